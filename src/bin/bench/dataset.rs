//! The memory benchmark's data: long conversations between players and the innkeeper,
//! generated from a seed (the same seed, the same bytes), with facts planted in them,
//! restated later in other words, and some contradicted ("Actually, I moved: …"), among
//! small talk; and questions whose evidence is the earlier messages that state the
//! fact's current value.
//!
//! Fact families follow the concept families of `mock_embeddings.rs`, and questions are
//! worded to share a concept with their evidence more than words ("Do you have any
//! pets?" against "my cat Whiskers…"), so embeddings that know concepts can beat a
//! lexical match. Small talk also touches those concepts ("A dog barked all night"), so
//! a concept alone does not find the evidence.
//!
//! The mock provider's rule-based fact extraction reads the same templates
//! ([`recognize`]): a planted or restated sentence yields the slot's fact text, a
//! contradiction an update of the known fact of that slot.

/// The timeline of one player: two conversations of this many messages each.
pub const MESSAGES_PER_CONVERSATION: u32 = 320;
pub const CONVERSATIONS_PER_PLAYER: u32 = 2;
pub const PLAYERS: usize = 4;
pub const SEED: u64 = 0x6e70_632d_6d65_6d00;
/// Minutes between two messages of a timeline.
pub const MINUTES_APART: i64 = 7;

/// One kind of fact a player may tell, with every way the dataset says it.
pub struct Slot {
    pub key: &'static str,
    /// The fact as the extractor writes it; `{}` is the value.
    pub fact: &'static str,
    pub values: &'static [&'static str],
    pub importance: u8,
    /// First mention.
    pub plants: &'static [&'static str],
    /// Later mention of the same value in other words.
    pub restates: &'static [&'static str],
    /// A new value that replaces the old; empty when the slot never changes.
    pub moves: &'static [&'static str],
    /// What a game might ask memory about it.
    pub questions: &'static [&'static str],
}

/// Values are single words, so that a rule can read them back out of a sentence.
pub const SLOTS: &[Slot] = &[
    Slot {
        key: "pet",
        fact: "Player has a cat named {}",
        values: &[
            "Whiskers", "Mittens", "Biscuit", "Pepper", "Shadow", "Tansy",
        ],
        importance: 6,
        plants: &[
            "By the way, my cat {} sleeps by the hearth every night.",
            "I must not be late, my cat {} gets grumpy when supper is late.",
        ],
        restates: &[
            "Did I tell you {} caught another mouse? Best cat in the valley.",
            "My little {} curled up on my cloak again; that cat owns me.",
        ],
        moves: &[],
        questions: &[
            "Do you have any pets?",
            "Is there an animal waiting for you somewhere?",
        ],
    },
    Slot {
        key: "sister",
        fact: "Player's sister is named {}",
        values: &["Elsa", "Brigid", "Maren", "Tilde", "Agna", "Liesel"],
        importance: 7,
        plants: &[
            "By the way, my sister is named {}.",
            "My sister {} would love this place.",
        ],
        restates: &[
            "A letter came from {}, my sister, this morning.",
            "I keep thinking of my sister; {} always knew what to say.",
        ],
        moves: &[],
        questions: &["Tell me about your family.", "Do you have any siblings?"],
    },
    Slot {
        key: "home",
        fact: "Player lives in {}",
        values: &[
            "Millbrook",
            "Riverton",
            "Ashford",
            "Stonehollow",
            "Kettlebridge",
            "Eastmere",
        ],
        importance: 6,
        plants: &[
            "I live in {}, past the old bridge.",
            "It is a long walk back to {}, where I live.",
        ],
        restates: &[
            "Back in {} the nights are colder than here.",
            "Folk in {} would never believe this inn; that is my town.",
        ],
        moves: &[
            "Actually, I moved: I live in {} now.",
            "I packed everything up; my new place is in {}.",
        ],
        questions: &[
            "Where is your home these days?",
            "Which town do you come from?",
        ],
    },
    Slot {
        key: "job",
        fact: "Player works as a {}",
        values: &["baker", "tanner", "scribe", "carpenter", "cooper", "weaver"],
        importance: 6,
        plants: &[
            "I work as a {} at the edge of town.",
            "Being a {} pays the bills, mostly.",
        ],
        restates: &[
            "Long shifts again; a {} is never done.",
            "My hands ache from the day; that is the {} life for you.",
        ],
        moves: &[
            "I quit my old trade. I am a {} these days.",
            "New guild, new work: I took up a post as a {}.",
        ],
        questions: &["What do you do for a living?", "What is your trade?"],
    },
    Slot {
        key: "fear",
        fact: "Player is afraid of {}",
        values: &[
            "spiders", "wolves", "heights", "thunder", "ghosts", "snakes",
        ],
        importance: 5,
        plants: &[
            "Truth be told, I am terrified of {}.",
            "Do not laugh, but {} frighten me more than bandits.",
        ],
        restates: &[
            "I still have nightmares about {}.",
            "Anything but {}; I would rather face the taxman.",
        ],
        moves: &[],
        questions: &[
            "Is there anything that scares you?",
            "What keeps you up at night?",
        ],
    },
    Slot {
        key: "food",
        fact: "Player's favourite dish is {}",
        values: &[
            "venison",
            "porridge",
            "trout",
            "dumplings",
            "mushrooms",
            "pie",
        ],
        importance: 4,
        plants: &[
            "My favourite dish is {}, hot from the pot.",
            "Nothing beats a plate of {} after a long ride.",
        ],
        restates: &[
            "I dream of {} on the road; mother made the best.",
            "If you ever serve {}, save me a bowl.",
        ],
        moves: &[
            "I have gone off my old favourite; these days I crave {} above all.",
            "My tastes changed, and now {} is what I order everywhere.",
        ],
        questions: &[
            "What do you like to eat?",
            "What should the kitchen cook for you tonight?",
        ],
    },
    Slot {
        key: "weapon",
        fact: "Player carries their grandfather's {}",
        values: &["axe", "spear", "sword", "dagger", "bow", "shield"],
        importance: 5,
        plants: &[
            "I never travel without my grandfather's {}.",
            "This old {} was my grandfather's, and it goes where I go.",
        ],
        restates: &[
            "Grandfather's {} saved my life on the mill road.",
            "I oiled the {} again; it was my grandfather's, you know.",
        ],
        moves: &[],
        questions: &[
            "What weapon do you fight with?",
            "Are you armed, traveller?",
        ],
    },
    Slot {
        key: "debt",
        fact: "Player owes money to the {}",
        values: &[
            "brewer", "ferryman", "chandler", "cobbler", "fletcher", "potter",
        ],
        importance: 6,
        plants: &[
            "I still owe the {} forty silver.",
            "The {} lent me coin last winter and wants it back.",
        ],
        restates: &[
            "If you see the {}, tell him I will pay him soon.",
            "That debt to the {} keeps me awake.",
        ],
        moves: &[],
        questions: &["Are you in debt to anyone?", "Who is after you for money?"],
    },
    Slot {
        key: "ship",
        fact: "Player once crewed the ship {}",
        values: &["Gull", "Herring", "Osprey", "Maiden", "Tern", "Marlin"],
        importance: 4,
        plants: &[
            "Years ago I crewed a ship called the {}.",
            "I spent three summers on the deck of the {}, hauling nets.",
        ],
        restates: &[
            "I still miss the {} and her crew.",
            "The {} was the best ship I ever sailed on.",
        ],
        moves: &[],
        questions: &[
            "Have you ever been to the ocean?",
            "Do you know your way around a boat?",
        ],
    },
    Slot {
        key: "name",
        fact: "Player's name is {}",
        values: &["Aldric", "Bran", "Corwin", "Dara", "Edda", "Fenna"],
        importance: 8,
        plants: &[
            "Call me {}, everyone does.",
            "The name is {}, pleased to meet you.",
        ],
        restates: &[
            "As I said, I am {}.",
            "Yes, {} is my name, and I will not forget yours either.",
        ],
        moves: &[],
        questions: &["What are you called?", "What name do you go by?"],
    },
];

/// The player's small talk: no fact in any of it, some of it touching the slots'
/// concepts (a dog, the harbour, the stew), so a concept alone does not find the evidence.
const PLAYER_SMALL_TALK: &[&str] = &[
    "Any rooms free tonight?",
    "The rain has not stopped all week.",
    "How has business been?",
    "I heard bandits were seen near the old bridge.",
    "Pour me another, would you?",
    "The market was busy today.",
    "The harbour smells of fish this morning.",
    "Your stew smells good.",
    "A dog barked all night outside my window.",
    "Is the smithy still open at this hour?",
    "My boots need mending before the journey.",
    "The tax collector comes next week, they say.",
    "Any news from the capital?",
    "The road from the east is all mud.",
    "Who is the bard by the fire?",
    "Those guards at the gate looked nervous.",
    "Is Tobin back from the market yet?",
    "The wind is picking up.",
    "I saw a fox cross the road at dusk.",
    "Do you know anyone selling a good lantern?",
    "This ale is better than last time.",
    "The bridge toll went up again.",
    "Someone left a sword by the door.",
    "The miller's cart lost a wheel today.",
    "A ship came into the harbour with torn sails.",
    "Are there wolves in the forest this year?",
    "My cloak is still wet from the river crossing.",
    "The family at the next table is loud tonight.",
    "How much for a hot meal?",
    "I could sleep for a week.",
];

/// Openers a player's line sometimes starts with before what it says.
const LEADS: &[&str] = &[
    "Long day on the road.",
    "Ah, that fire is welcome.",
    "Well then.",
    "Between us,",
    "Hm.",
];

const CHARACTER_SMALL_TALK: &[&str] = &[
    "Aye, that is the way of it.",
    "Another ale, then?",
    "Mind the stairs, the third one creaks.",
    "Hm. Go on.",
    "I have heard worse tales.",
    "The roof leaks again, curse it.",
    "Room's three silver a night, paid up front.",
    "Keep your voice down, the guards drink here too.",
    "Tobin owes me money as well.",
    "Eat something, you look pale.",
    "That so? Well, well.",
    "The brewer is late with the barrels again.",
    "Wipe your boots before you come in.",
    "I do not gossip. Much.",
    "We close when the last one falls asleep.",
    "Sit by the fire, it is warmer there.",
];

/// A small, stable generator (SplitMix64): the dataset must not change when a crate's
/// RNG does.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// In `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    Player,
    Character,
}

impl Speaker {
    pub fn role(self) -> &'static str {
        match self {
            Self::Player => "player",
            Self::Character => "character",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub conversation: String,
    pub seq: u32,
    pub speaker: Speaker,
    pub content: String,
    /// Minutes after the start of the player's timeline.
    pub minute: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuestionKind {
    /// Said once.
    Single,
    /// Said, then said again in other words.
    Restated,
    /// Said, then contradicted: the evidence is the contradiction.
    Contradicted,
}

impl QuestionKind {
    pub const ALL: [Self; 3] = [Self::Single, Self::Restated, Self::Contradicted];

    pub fn label(self) -> &'static str {
        match self {
            Self::Single => "said once",
            Self::Restated => "restated",
            Self::Contradicted => "contradicted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    pub player: String,
    pub conversations: Vec<String>,
    pub text: String,
    /// (conversation, seq) of every message that states the current value.
    pub evidence: Vec<(String, u32)>,
    /// The fact an extractor should hold now.
    pub expected_fact: String,
    pub kind: QuestionKind,
}

/// A fact that was contradicted: the old text should be gone, the new one there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contradiction {
    pub player: String,
    pub old_fact: String,
    pub new_fact: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Player {
    pub id: String,
    pub conversations: Vec<String>,
    /// The whole timeline, conversation by conversation, in order.
    pub messages: Vec<Message>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    pub players: Vec<Player>,
    pub questions: Vec<Question>,
    pub contradictions: Vec<Contradiction>,
    /// Restatements made (each should leave no second copy of its fact).
    pub restatements: usize,
    /// Facts planted, one per slot and player.
    pub planted: usize,
}

pub fn fact_text(slot: &Slot, value: &str) -> String {
    slot.fact.replace("{}", value)
}

/// What one player event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Plant(usize),
    Restate(usize),
    Move(usize),
}

/// A free player position (an index into the timeline's player lines) in
/// `[from, to)`, or the nearest free one after it.
fn free_position(rng: &mut Rng, taken: &mut [bool], from: usize, to: usize) -> usize {
    let start = from + rng.below(to.saturating_sub(from).max(1));
    let position = (start..taken.len())
        .chain(0..start)
        .find(|&p| !taken[p])
        .unwrap_or(start);
    taken[position] = true;
    position
}

pub fn generate(seed: u64) -> Dataset {
    let mut rng = Rng::new(seed);
    let mut players = Vec::new();
    let mut questions = Vec::new();
    let mut contradictions = Vec::new();
    let mut restatements = 0;
    let mut planted = 0;
    let timeline_len = (MESSAGES_PER_CONVERSATION * CONVERSATIONS_PER_PLAYER) as usize;
    let player_lines = timeline_len / 2;
    for p in 0..PLAYERS {
        let id = format!("p-mem-{p}");
        let conversations: Vec<String> = (0..CONVERSATIONS_PER_PLAYER)
            .map(|c| format!("mem-{p}-{c}"))
            .collect();
        let mut taken = vec![false; player_lines];
        let mut events: Vec<(usize, Event, &'static str, &'static str)> = Vec::new();
        let mut current: Vec<(usize, &'static str)> = Vec::new();
        for (s, slot) in SLOTS.iter().enumerate() {
            let value = *rng.pick(slot.values);
            let at = free_position(&mut rng, &mut taken, 1, player_lines * 35 / 100);
            events.push((at, Event::Plant(s), *rng.pick(slot.plants), value));
            planted += 1;
            if rng.chance(60) {
                let at = free_position(
                    &mut rng,
                    &mut taken,
                    player_lines * 40 / 100,
                    player_lines * 60 / 100,
                );
                events.push((at, Event::Restate(s), *rng.pick(slot.restates), value));
                restatements += 1;
            }
            let mut now = value;
            if !slot.moves.is_empty() && rng.chance(75) {
                let others: Vec<&'static str> = slot
                    .values
                    .iter()
                    .copied()
                    .filter(|other| *other != value)
                    .collect();
                now = *rng.pick(&others);
                let at = free_position(
                    &mut rng,
                    &mut taken,
                    player_lines * 65 / 100,
                    player_lines * 95 / 100,
                );
                events.push((at, Event::Move(s), *rng.pick(slot.moves), now));
                contradictions.push(Contradiction {
                    player: id.clone(),
                    old_fact: fact_text(slot, value),
                    new_fact: fact_text(slot, now),
                });
            }
            current.push((s, now));
        }
        events.sort_by_key(|event| event.0);
        let mut messages = Vec::with_capacity(timeline_len);
        // (slot, conversation, seq) of every event message, in order.
        let mut said: Vec<(Event, String, u32)> = Vec::new();
        let mut next_event = events.iter().peekable();
        for i in 0..timeline_len {
            let conversation = &conversations[i / MESSAGES_PER_CONVERSATION as usize];
            let seq = (i % MESSAGES_PER_CONVERSATION as usize) as u32 + 1;
            let (speaker, content) = if i % 2 == 0 {
                let line = i / 2;
                let content = match next_event.next_if(|event| event.0 == line) {
                    Some(&(_, event, template, value)) => {
                        said.push((event, conversation.clone(), seq));
                        let sentence = template.replace("{}", value);
                        if rng.chance(40) {
                            format!("{} {sentence}", rng.pick(LEADS))
                        } else {
                            sentence
                        }
                    }
                    None => (*rng.pick(PLAYER_SMALL_TALK)).to_owned(),
                };
                (Speaker::Player, content)
            } else {
                (
                    Speaker::Character,
                    (*rng.pick(CHARACTER_SMALL_TALK)).to_owned(),
                )
            };
            messages.push(Message {
                conversation: conversation.clone(),
                seq,
                speaker,
                content,
                minute: i as i64 * MINUTES_APART,
            });
        }
        for (s, value) in current {
            let slot = &SLOTS[s];
            let moved = said.iter().any(|(event, _, _)| *event == Event::Move(s));
            let restated = said.iter().any(|(event, _, _)| *event == Event::Restate(s));
            let evidence: Vec<(String, u32)> = said
                .iter()
                .filter(|(event, _, _)| {
                    if moved {
                        *event == Event::Move(s)
                    } else {
                        matches!(event, Event::Plant(e) | Event::Restate(e) if *e == s)
                    }
                })
                .map(|(_, conversation, seq)| (conversation.clone(), *seq))
                .collect();
            let kind = if moved {
                QuestionKind::Contradicted
            } else if restated {
                QuestionKind::Restated
            } else {
                QuestionKind::Single
            };
            for text in slot.questions {
                questions.push(Question {
                    player: id.clone(),
                    conversations: conversations.clone(),
                    text: (*text).to_owned(),
                    evidence: evidence.clone(),
                    expected_fact: fact_text(slot, value),
                    kind,
                });
            }
        }
        players.push(Player {
            id,
            conversations,
            messages,
        });
    }
    Dataset {
        players,
        questions,
        contradictions,
        restatements,
        planted,
    }
}

/// What a dataset sentence says, as the mock's extractor reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recognized {
    /// A fact (planted or restated: the same text either way).
    Fact {
        slot: usize,
        text: String,
        importance: u8,
    },
    /// A new value for the slot: replaces the known fact of that slot.
    Change {
        slot: usize,
        text: String,
        importance: u8,
    },
}

/// The value a template's `{}` stands for in `line`, if the template occurs in it.
fn read_value(template: &str, line: &str) -> Option<String> {
    let (prefix, suffix) = template.split_once("{}")?;
    line.match_indices(prefix).find_map(|(at, _)| {
        let rest = line.get(at + prefix.len()..)?;
        let value: String = rest.chars().take_while(|c| c.is_alphanumeric()).collect();
        (!value.is_empty() && rest[value.len()..].starts_with(suffix)).then_some(value)
    })
}

/// Rule-based reading of one player line: which slot's template it holds, and the value.
pub fn recognize(line: &str) -> Option<Recognized> {
    for (s, slot) in SLOTS.iter().enumerate() {
        if let Some(value) = slot.moves.iter().find_map(|t| read_value(t, line)) {
            return Some(Recognized::Change {
                slot: s,
                text: fact_text(slot, &value),
                importance: slot.importance,
            });
        }
    }
    for (s, slot) in SLOTS.iter().enumerate() {
        if let Some(value) = slot
            .plants
            .iter()
            .chain(slot.restates)
            .find_map(|t| read_value(t, line))
        {
            return Some(Recognized::Fact {
                slot: s,
                text: fact_text(slot, &value),
                importance: slot.importance,
            });
        }
    }
    None
}

/// Whether `text` is a fact of `slot` (whatever its value).
pub fn is_fact_of(slot: usize, text: &str) -> bool {
    let Some((prefix, suffix)) = SLOTS[slot].fact.split_once("{}") else {
        return false;
    };
    text.len() > prefix.len() + suffix.len() && text.starts_with(prefix) && text.ends_with(suffix)
}

/// Small talk for the latency runs' imported messages (no facts in it).
pub fn small_talk(rng: &mut Rng, speaker: Speaker) -> &'static str {
    match speaker {
        Speaker::Player => PLAYER_SMALL_TALK[rng.below(PLAYER_SMALL_TALK.len())],
        Speaker::Character => CHARACTER_SMALL_TALK[rng.below(CHARACTER_SMALL_TALK.len())],
    }
}

/// Facts for the latency runs, straight into the database: `i` gives a different text
/// for every `i`, drawn from the slots' templates.
pub fn filler_fact(i: usize) -> (String, u8) {
    let slot = &SLOTS[i % SLOTS.len()];
    let value = slot.values[(i / SLOTS.len()) % slot.values.len()];
    (
        format!("{} (note {i})", fact_text(slot, value)),
        slot.importance,
    )
}

/// The questions' texts, for the latency runs' queries.
pub fn question_texts() -> Vec<&'static str> {
    SLOTS
        .iter()
        .flat_map(|slot| slot.questions.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn the_same_seed_gives_the_same_dataset_and_another_seed_another() {
        assert_eq!(generate(SEED), generate(SEED));
        assert_ne!(generate(SEED).players, generate(SEED + 1).players);
    }

    #[test]
    fn conversations_are_long_and_alternate_with_gapless_seq() {
        let dataset = generate(SEED);
        assert_eq!(dataset.players.len(), PLAYERS);
        for player in &dataset.players {
            assert_eq!(
                player.conversations.len(),
                CONVERSATIONS_PER_PLAYER as usize
            );
            for conversation in &player.conversations {
                let messages: Vec<&Message> = player
                    .messages
                    .iter()
                    .filter(|m| &m.conversation == conversation)
                    .collect();
                assert!(messages.len() >= 300);
                assert_eq!(messages.len(), MESSAGES_PER_CONVERSATION as usize);
                for (i, message) in messages.iter().enumerate() {
                    assert_eq!(message.seq as usize, i + 1);
                    let expected = if i % 2 == 0 {
                        Speaker::Player
                    } else {
                        Speaker::Character
                    };
                    assert_eq!(message.speaker, expected);
                }
            }
            assert!(
                player
                    .messages
                    .windows(2)
                    .all(|w| w[0].minute < w[1].minute)
            );
        }
    }

    #[test]
    fn counts_of_facts_restatements_contradictions_and_questions() {
        let dataset = generate(SEED);
        assert_eq!(dataset.planted, PLAYERS * SLOTS.len());
        let per_slot: usize = SLOTS.iter().map(|slot| slot.questions.len()).sum();
        assert_eq!(dataset.questions.len(), PLAYERS * per_slot);
        assert!(
            dataset.restatements >= PLAYERS * 3,
            "{}",
            dataset.restatements
        );
        assert!(
            dataset.contradictions.len() >= PLAYERS,
            "{}",
            dataset.contradictions.len()
        );
        for kind in QuestionKind::ALL {
            assert!(dataset.questions.iter().any(|q| q.kind == kind), "{kind:?}");
        }
        // Every player line the extractor recognizes is one of the planted events, and
        // every event is recognized.
        let recognized: usize = dataset
            .players
            .iter()
            .flat_map(|p| &p.messages)
            .filter(|m| m.speaker == Speaker::Player && recognize(&m.content).is_some())
            .count();
        assert_eq!(
            recognized,
            dataset.planted + dataset.restatements + dataset.contradictions.len()
        );
    }

    #[test]
    fn evidence_is_earlier_player_lines_that_state_the_expected_fact() {
        let dataset = generate(SEED);
        for question in &dataset.questions {
            assert!(!question.evidence.is_empty());
            let player = dataset
                .players
                .iter()
                .find(|p| p.id == question.player)
                .unwrap_or_else(|| panic!("no player {}", question.player));
            for (conversation, seq) in &question.evidence {
                let message = player
                    .messages
                    .iter()
                    .find(|m| &m.conversation == conversation && m.seq == *seq)
                    .unwrap_or_else(|| panic!("no message {conversation}/{seq}"));
                let text = match recognize(&message.content) {
                    Some(Recognized::Fact { text, .. } | Recognized::Change { text, .. }) => text,
                    None => panic!("evidence without a fact: {}", message.content),
                };
                assert_eq!(text, question.expected_fact);
            }
            let expected_evidence = match question.kind {
                QuestionKind::Restated => 2,
                _ => 1,
            };
            assert_eq!(question.evidence.len(), expected_evidence, "{question:?}");
        }
        for contradiction in &dataset.contradictions {
            assert_ne!(contradiction.old_fact, contradiction.new_fact);
        }
    }

    #[test]
    fn the_rules_read_plants_restatements_and_changes_and_nothing_else() {
        assert_eq!(
            recognize("Hm. By the way, my sister is named Elsa."),
            Some(Recognized::Fact {
                slot: 1,
                text: "Player's sister is named Elsa".to_owned(),
                importance: 7
            })
        );
        assert_eq!(
            recognize("Actually, I moved: I live in Riverton now."),
            Some(Recognized::Change {
                slot: 2,
                text: "Player lives in Riverton".to_owned(),
                importance: 6
            })
        );
        assert_eq!(
            recognize("I still have nightmares about wolves."),
            recognize("Truth be told, I am terrified of wolves.")
        );
        for line in PLAYER_SMALL_TALK.iter().chain(CHARACTER_SMALL_TALK) {
            assert_eq!(recognize(line), None, "{line}");
        }
        assert!(is_fact_of(2, "Player lives in Riverton"));
        assert!(!is_fact_of(2, "Player's sister is named Elsa"));
    }

    #[test]
    fn filler_facts_are_all_different() {
        let texts: HashSet<String> = (0..10_000).map(|i| filler_fact(i).0).collect();
        assert_eq!(texts.len(), 10_000);
    }
}
