//! A world the characters share: lore the studio writes, scoped and gated by game flags
//! (`lore`); game events their witnesses remember (`events`); gossip that carries a
//! memory to the other members of its holder's factions, with provenance (`gossip`);
//! and what a character would know in a turn, with why (`knowledge`).

pub mod events;
pub mod gossip;
pub mod knowledge;
pub mod lore;
