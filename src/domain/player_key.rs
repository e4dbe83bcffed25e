//! A player's id under a keyed hash (HMAC-SHA256 with a service secret): what the service
//! keeps of a player after erasure, so their budget survives "delete my data" while
//! nothing stored leads back to the id.

use super::PlayerId;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// 64 lower-case hex characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, sqlx::Type)]
#[sqlx(transparent)]
pub struct PlayerKey(String);

impl PlayerKey {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Turns player ids into `PlayerKey`s with one secret, the same on every replica.
#[derive(Clone)]
pub struct PlayerKeys {
    secret: Vec<u8>,
}

impl std::fmt::Debug for PlayerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PlayerKeys([redacted])")
    }
}

impl PlayerKeys {
    pub fn new(secret: &[u8]) -> Self {
        Self {
            secret: secret.to_vec(),
        }
    }

    pub fn key(&self, player_id: &PlayerId) -> PlayerKey {
        // HMAC takes a key of any length; `new_from_slice` cannot fail for it.
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret)
            .map(|mac| mac.chain_update(player_id.as_str().as_bytes()).finalize());
        PlayerKey(match mac {
            Ok(mac) => hex::encode(mac.into_bytes()),
            Err(_) => String::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(raw: &str) -> PlayerId {
        PlayerId::parse(raw).unwrap_or_else(|_| panic!("bad id {raw}"))
    }

    #[test]
    fn a_key_is_the_hmac_of_the_id_and_depends_on_the_secret() {
        // RFC 4231 test case 2: HMAC-SHA256(key "Jefe", "what do ya want for nothing?").
        assert_eq!(
            PlayerKeys::new(b"Jefe")
                .key(&id("what do ya want for nothing?"))
                .as_str(),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let (a, b) = (PlayerKeys::new(b"one"), PlayerKeys::new(b"two"));
        assert_eq!(a.key(&id("p-7")), a.key(&id("p-7")));
        assert_ne!(a.key(&id("p-7")), b.key(&id("p-7")));
        assert_ne!(a.key(&id("p-7")), a.key(&id("p-8")));
        assert_eq!(a.key(&id("p-7")).as_str().len(), 64);
    }
}
