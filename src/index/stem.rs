//! English stemming with a memo: the same filter as tantivy's `Stemmer` (the same frostem
//! algorithm, so the index is unchanged), but each distinct word is stemmed once per analyzer
//! instead of at every occurrence. Mail text repeats its words heavily (Zipf): profiling showed
//! the Snowball stemmer at nearly half of the indexing time and the biggest part of producing
//! snippets for a search; with the memo most words are one hash lookup (FxHash: the words are
//! short and not chosen by an attacker who could exploit collisions beyond a slower index run).

use rustc_hash::FxHashMap;
use tantivy::tokenizer::{Token, TokenFilter, TokenStream, Tokenizer};

/// Distinct words remembered per analyzer before the memo starts over (a few MB at most).
const MEMO_LIMIT: usize = 100_000;

/// The token filter: English stemming, memoized.
#[derive(Clone, Copy, Debug, Default)]
pub struct MemoStemmer;

impl TokenFilter for MemoStemmer {
    type Tokenizer<T: Tokenizer> = MemoStemmerFilter<T>;

    fn transform<T: Tokenizer>(self, tokenizer: T) -> MemoStemmerFilter<T> {
        MemoStemmerFilter {
            inner: tokenizer,
            memo: FxHashMap::default(),
        }
    }
}

/// A tokenizer followed by memoized stemming.
#[derive(Clone)]
pub struct MemoStemmerFilter<T> {
    inner: T,
    memo: FxHashMap<String, String>,
}

impl<T: Tokenizer> Tokenizer for MemoStemmerFilter<T> {
    type TokenStream<'a> = MemoStemmerStream<'a, T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        if self.memo.len() > MEMO_LIMIT {
            self.memo.clear();
        }
        MemoStemmerStream {
            tail: self.inner.token_stream(text),
            stemmer: frostem::Stemmer::new(frostem::Algorithm::English),
            memo: &mut self.memo,
        }
    }
}

/// The token stream of [`MemoStemmerFilter`].
pub struct MemoStemmerStream<'a, S> {
    tail: S,
    stemmer: frostem::Stemmer,
    memo: &'a mut FxHashMap<String, String>,
}

impl<S: TokenStream> TokenStream for MemoStemmerStream<'_, S> {
    fn advance(&mut self) -> bool {
        if !self.tail.advance() {
            return false;
        }
        let token = self.tail.token_mut();
        if let Some(stem) = self.memo.get(token.text.as_str()) {
            if *stem != token.text {
                token.text.clear();
                token.text.push_str(stem);
            }
        } else {
            let stem = self.stemmer.stem(&token.text).into_owned();
            let word = std::mem::replace(&mut token.text, stem.clone());
            self.memo.insert(word, stem);
        }
        true
    }

    fn token(&self) -> &Token {
        self.tail.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.tail.token_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tantivy::tokenizer::{Language, LowerCaser, SimpleTokenizer, Stemmer, TextAnalyzer};

    fn tokens(analyzer: &mut TextAnalyzer, text: &str) -> Vec<(String, usize, usize, usize)> {
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            let t = stream.token();
            out.push((t.text.clone(), t.offset_from, t.offset_to, t.position));
        }
        out
    }

    proptest! {
        #[test]
        fn the_same_tokens_as_tantivys_stemmer(texts in proptest::collection::vec("[a-zA-Z ,.]{0,80}", 1..6)) {
            let mut theirs = TextAnalyzer::builder(SimpleTokenizer::default())
                .filter(LowerCaser)
                .filter(Stemmer::new(Language::English))
                .build();
            let mut ours = TextAnalyzer::builder(SimpleTokenizer::default())
                .filter(LowerCaser)
                .filter(MemoStemmer)
                .build();
            // Several texts through the same analyzers: the memo carries over between them.
            for text in &texts {
                prop_assert_eq!(tokens(&mut ours, text), tokens(&mut theirs, text));
            }
        }
    }

    #[test]
    fn stems_english_words() {
        let mut ours = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(LowerCaser)
            .filter(MemoStemmer)
            .build();
        let words: Vec<String> = tokens(&mut ours, "Running runners ran; running again")
            .into_iter()
            .map(|t| t.0)
            .collect();
        assert_eq!(words, ["run", "runner", "ran", "run", "again"]);
    }
}
