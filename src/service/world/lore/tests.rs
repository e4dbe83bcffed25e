use super::*;

fn entry(id: &str, text: &str, scope: Scope, scope_id: Option<&str>, flags: &[&str]) -> LoreEntry {
    let row = LoreRow {
        id: id.into(),
        text: text.into(),
        scope: scope.as_str().into(),
        scope_id: scope_id.map(str::to_owned),
        tags: "[]".into(),
        requires_flags: serde_json::to_string(flags).unwrap_or_default(),
        created_at: crate::clock::now(),
        updated_at: crate::clock::now(),
    };
    LoreEntry::try_from(row).expect("a valid row")
}

fn watchman<'a>(factions: &'a [Faction], flags: &'a [String]) -> Knower<'a> {
    Knower {
        character_id: "bram",
        factions,
        flags,
    }
}

#[test]
fn only_entries_in_scope_with_every_flag_set_are_known() {
    let watch = [Faction::parse("watch").unwrap()];
    let entries = [
        entry("world", "The realm is Esterra.", Scope::World, None, &[]),
        entry(
            "watch",
            "The password is oakleaf.",
            Scope::Faction,
            Some("watch"),
            &[],
        ),
        entry(
            "thieves",
            "The fence lives by the docks.",
            Scope::Faction,
            Some("thieves"),
            &[],
        ),
        entry(
            "bram",
            "Bram owes money.",
            Scope::Character,
            Some("bram"),
            &[],
        ),
        entry(
            "mara",
            "Mara owes money.",
            Scope::Character,
            Some("mara"),
            &[],
        ),
        entry(
            "spoiler",
            "The king was poisoned.",
            Scope::World,
            None,
            &["met_king", "vial"],
        ),
    ];
    let ids = |flags: &[&str]| {
        let flags: Vec<String> = flags.iter().map(|f| (*f).to_owned()).collect();
        let mut ids: Vec<&str> = known(&entries, watchman(&watch, &flags), "")
            .into_iter()
            .map(|entry| entry.id.as_str())
            .collect();
        ids.sort_unstable();
        ids
    };
    assert_eq!(ids(&[]), ["bram", "watch", "world"]);
    assert_eq!(ids(&["met_king"]), ["bram", "watch", "world"]);
    assert_eq!(
        ids(&["vial", "met_king"]),
        ["bram", "spoiler", "watch", "world"]
    );
    let nobody = known(&entries, watchman(&[], &[]), "");
    assert_eq!(nobody.len(), 2, "world lore and Bram's own");
}

#[test]
fn the_line_ranks_entries_then_the_characters_own_before_the_world() {
    let entries = [
        entry("realm", "The realm is Esterra.", Scope::World, None, &[]),
        entry(
            "bridge",
            "The bridge at Fenford is down.",
            Scope::World,
            None,
            &[],
        ),
        entry(
            "debt",
            "Bram owes the guild money.",
            Scope::Character,
            Some("bram"),
            &[],
        ),
    ];
    let order = |line: &str| -> Vec<String> {
        known(&entries, watchman(&[], &[]), line)
            .into_iter()
            .map(|entry| entry.id.clone())
            .collect()
    };
    assert_eq!(order("Is the bridge still down?")[0], "bridge");
    // Nothing shared with the line: the character's own lore first.
    assert_eq!(order("Good morning")[0], "debt");
}

#[test]
fn a_prompt_carries_at_most_three_entries_within_the_budget() {
    let long = "word ".repeat(LORE_PROMPT_CHARS);
    let entries: Vec<LoreEntry> = (0..5)
        .map(|i| {
            entry(
                &format!("e{i}"),
                &format!("Entry {i}."),
                Scope::World,
                None,
                &[],
            )
        })
        .chain([entry("long", &long, Scope::World, None, &[])])
        .collect();
    let chosen = for_prompt(&entries[..5], watchman(&[], &[]), "");
    assert_eq!(chosen.len(), LORE_IN_PROMPT);
    // The best entry alone over the budget is clipped to it.
    let clipped = for_prompt(&entries[5..], watchman(&[], &[]), "");
    assert_eq!(clipped.len(), 1);
    assert_eq!(clipped[0].chars().count(), LORE_PROMPT_CHARS + 1);
    assert!(clipped[0].ends_with('…'));
}
