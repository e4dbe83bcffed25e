//! Token estimates for when a provider does not report usage: nothing spent goes unbilled.

use super::ChatMessage;
use std::sync::OnceLock;
use tiktoken_rs::CoreBPE;

/// Tokens the chat format adds around each message (role, separators).
const PER_MESSAGE_OVERHEAD: usize = 4;
/// Tokens that prime the assistant's reply.
const REPLY_PRIMING: usize = 3;

fn encoder() -> Option<&'static CoreBPE> {
    static ENCODER: OnceLock<Option<CoreBPE>> = OnceLock::new();
    ENCODER
        .get_or_init(|| match tiktoken_rs::o200k_base() {
            Ok(bpe) => Some(bpe),
            Err(error) => {
                tracing::error!(%error, "tokenizer unavailable; estimating by characters");
                None
            }
        })
        .as_ref()
}

/// Tokens in a piece of text (o200k, the encoding of the gpt-4o family).
pub fn count(text: &str) -> u32 {
    let tokens = match encoder() {
        Some(bpe) => bpe.encode_ordinary(text).len(),
        // About four characters a token in English: a floor, not a bill.
        None => text.chars().count().div_ceil(4),
    };
    u32::try_from(tokens).unwrap_or(u32::MAX)
}

/// Tokens a chat prompt costs, as OpenAI counts them for the gpt-4o family.
pub fn count_prompt(messages: &[ChatMessage]) -> u32 {
    let content: u32 = messages.iter().map(|m| count(&m.content)).sum();
    let overhead = messages.len() * PER_MESSAGE_OVERHEAD + REPLY_PRIMING;
    content.saturating_add(u32::try_from(overhead).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ChatRole;

    #[test]
    fn counts_tokens_with_the_o200k_encoding() {
        assert_eq!(count(""), 0);
        assert_eq!(count("hello world"), 2);
    }

    #[test]
    fn prompt_estimate_adds_the_chat_overhead() {
        let messages = vec![
            ChatMessage::new(ChatRole::System, "hello world"),
            ChatMessage::new(ChatRole::User, "hello world"),
        ];
        assert_eq!(count_prompt(&messages), 2 + 2 + 2 * 4 + 3);
    }
}
