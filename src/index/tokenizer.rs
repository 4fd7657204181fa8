//! Splits chat text into words for the index.
//!
//! Letters and digits of any script make words (`café`, `Привет`, `5000`);
//! everything else separates them. Chinese, Japanese and Korean are written
//! without spaces, so a run of those characters becomes overlapping bigrams
//! (`调查员` → `调查`, `查员`; a lone character stays a unigram): a query
//! word tokenized the same way becomes a phrase of bigrams and finds the word
//! anywhere in a run. Positions count tokens, so phrases and proximity work
//! for both kinds.

use tantivy::tokenizer::{Token, TokenStream, Tokenizer};

/// The chat tokenizer (see the module documentation).
#[derive(Clone, Default)]
pub struct ChatTokenizer {
    token: Token,
}

/// Whether `c` belongs to a script written without spaces between words.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK Extension A
        | 0x4E00..=0x9FFF    // CJK Unified Ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0xF900..=0xFAFF    // CJK Compatibility Ideographs
        | 0x20000..=0x2FA1F  // CJK Extensions B and later
    )
}

pub struct ChatTokenStream<'a> {
    text: &'a str,
    /// Byte offset of the next character to look at.
    cursor: usize,
    /// Inside a CJK run: the byte offset of the bigram's first character.
    cjk_next: Option<usize>,
    position: usize,
    token: &'a mut Token,
}

impl Tokenizer for ChatTokenizer {
    type TokenStream<'a> = ChatTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> ChatTokenStream<'a> {
        self.token.reset();
        ChatTokenStream {
            text,
            cursor: 0,
            cjk_next: None,
            position: 0,
            token: &mut self.token,
        }
    }
}

impl ChatTokenStream<'_> {
    fn emit(&mut self, from: usize, to: usize) -> bool {
        self.token.offset_from = from;
        self.token.offset_to = to;
        self.token.position = self.position;
        self.token.position_length = 1;
        self.token.text.clear();
        self.token.text.push_str(&self.text[from..to]);
        self.position += 1;
        true
    }

    /// The next token of a CJK run starting at `start`, if any.
    fn cjk_token(&mut self, start: usize) -> Option<bool> {
        let mut chars = self.text[start..].char_indices();
        let (_, first) = chars.next()?;
        if !is_cjk(first) {
            self.cjk_next = None;
            return None;
        }
        let first_end = start + first.len_utf8();
        match chars.next() {
            Some((offset, second)) if is_cjk(second) => {
                let second_end = start + offset + second.len_utf8();
                self.cjk_next = Some(first_end);
                self.cursor = second_end;
                Some(self.emit(start, second_end))
            }
            _ => {
                self.cjk_next = None;
                self.cursor = first_end;
                // A run of one character, or the end of a longer run whose
                // last character was already in a bigram.
                if self.position > 0 && self.token.offset_to == first_end {
                    None
                } else {
                    Some(self.emit(start, first_end))
                }
            }
        }
    }
}

impl TokenStream for ChatTokenStream<'_> {
    fn advance(&mut self) -> bool {
        if let Some(next) = self.cjk_next
            && let Some(emitted) = self.cjk_token(next)
        {
            return emitted;
        }
        loop {
            let rest = &self.text[self.cursor..];
            let Some((skip, first)) = rest.char_indices().find(|(_, c)| c.is_alphanumeric()) else {
                self.cursor = self.text.len();
                return false;
            };
            let start = self.cursor + skip;
            if is_cjk(first) {
                match self.cjk_token(start) {
                    Some(emitted) => return emitted,
                    None => continue,
                }
            }
            let end = self.text[start..]
                .char_indices()
                .find(|(_, c)| !c.is_alphanumeric() || is_cjk(*c))
                .map_or(self.text.len(), |(offset, _)| start + offset);
            self.cursor = end;
            return self.emit(start, end);
        }
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<(String, usize)> {
        let mut tokenizer = ChatTokenizer::default();
        let mut stream = tokenizer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            let token = stream.token();
            assert_eq!(&text[token.offset_from..token.offset_to], token.text);
            out.push((token.text.clone(), token.position));
        }
        out
    }

    fn words(text: &str) -> Vec<String> {
        tokens(text).into_iter().map(|(word, _)| word).collect()
    }

    #[test]
    fn latin_cyrillic_and_digits_make_words() {
        assert_eq!(
            words("Wire $5,000 to the café — Привет, мир!"),
            ["Wire", "5", "000", "to", "the", "café", "Привет", "мир"]
        );
    }

    #[test]
    fn cjk_runs_become_bigrams_with_consecutive_positions() {
        assert_eq!(
            tokens("调查员"),
            [("调查".to_owned(), 0), ("查员".to_owned(), 1)]
        );
        assert_eq!(words("调"), ["调"]);
        assert_eq!(words("the 调查 team"), ["the", "调查", "team"]);
        assert_eq!(words("会議abc会"), ["会議", "abc", "会"]);
        assert_eq!(words("東京タワー"), ["東京", "京タ", "タワ", "ワー"]);
    }

    #[test]
    fn emoji_and_punctuation_separate() {
        assert_eq!(words("deal🎉done...ok"), ["deal", "done", "ok"]);
        assert!(words("!!! 🎉 ---").is_empty());
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_offsets_are_char_boundaries(text in "\\PC{0,64}") {
            let _ = tokens(&text);
        }
    }
}
