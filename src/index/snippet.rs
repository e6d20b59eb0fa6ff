//! Snippets for search hits: a window of a message's stored body preview that starts just before
//! the first word matching one of the query's body terms, with every matching word in the window
//! marked. The words go through the index's own analyzer, so "kernels" in the text matches the
//! query word "kernel" exactly when the index matched them.
//!
//! This replaces tantivy's `SnippetGenerator`, which tokenizes the whole preview of every hit,
//! scores every possible fragment and then picks the best: profiling a 50-hit search showed it at
//! two thirds of the process's instructions, more than the search itself. Here tokenizing stops
//! at the end of the window after the first match, and a query without body words (`subject:`,
//! `from:`, `id:`, …) tokenizes nothing and shows the beginning of the body. The window is the
//! first match, not the best-scoring one; for a mail archive, whose hits are short messages
//! sorted by date, that is the snippet a reader wants.

use rustc_hash::FxHashSet;
use std::collections::VecDeque;
use std::ops::Range;
use tantivy::query::Query;
use tantivy::schema::Field;
use tantivy::tokenizer::TextAnalyzer;

/// How far before the first match a window may start, in bytes (a few words of context), and at
/// most a quarter of the window.
const LEAD_BYTES: usize = 48;

/// Makes the snippets of one search's hits.
pub struct SnippetMaker {
    terms: FxHashSet<String>,
    analyzer: TextAnalyzer,
    max_chars: usize,
}

/// One snippet: the text and the byte ranges of the matching words in it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snippet {
    /// The window of text.
    pub text: String,
    /// Byte ranges of `text` that matched the query.
    pub highlights: Vec<Range<usize>>,
}

impl SnippetMaker {
    /// A maker for the words `query` looks for in `field`, analyzed by `analyzer` (the field's
    /// own), with windows of at most `max_chars` characters.
    pub fn new(query: &dyn Query, field: Field, analyzer: TextAnalyzer, max_chars: usize) -> Self {
        let mut terms = FxHashSet::default();
        query.query_terms(&mut |term, _| {
            if term.field() == field
                && let Some(text) = term.value().as_str()
            {
                terms.insert(text.to_string());
            }
        });
        SnippetMaker {
            terms,
            analyzer,
            max_chars,
        }
    }

    /// The snippet of `text`: around its first matching word, or its beginning when no word
    /// matches.
    pub fn make(&mut self, text: &str) -> Snippet {
        if self.terms.is_empty() {
            return head(text, self.max_chars);
        }
        // Starts of the last few words, to begin the window a little before the first match.
        let lead = LEAD_BYTES.min(self.max_chars / 4);
        let mut recent: VecDeque<usize> = VecDeque::with_capacity(8);
        let mut window: Option<Range<usize>> = None;
        let mut highlights = Vec::new();
        let mut stream = self.analyzer.token_stream(text);
        while stream.advance() {
            let token = stream.token();
            let (from, to) = (token.offset_from, token.offset_to);
            let hit = self.terms.contains(token.text.as_str());
            match &window {
                None => {
                    if hit {
                        let start = recent
                            .iter()
                            .copied()
                            .find(|&s| from - s <= lead)
                            .unwrap_or(from);
                        let end = end_after(text, start, self.max_chars);
                        if to <= end {
                            highlights.push(from - start..to - start);
                        }
                        window = Some(start..end);
                    } else {
                        if recent.len() == 8 {
                            recent.pop_front();
                        }
                        recent.push_back(from);
                    }
                }
                Some(w) => {
                    if to > w.end {
                        break;
                    }
                    if hit {
                        highlights.push(from - w.start..to - w.start);
                    }
                }
            }
        }
        match window {
            Some(w) => Snippet {
                text: text[w].to_string(),
                highlights,
            },
            None => head(text, self.max_chars),
        }
    }
}

/// The first `max_chars` characters of `text`, cut at a word boundary when one is near.
fn head(text: &str, max_chars: usize) -> Snippet {
    let end = end_after(text, 0, max_chars);
    Snippet {
        text: text[..end].to_string(),
        highlights: Vec::new(),
    }
}

/// The byte index where a window of at most `max_chars` characters starting at byte `start`
/// ends: the text's end if it is that close, else the last whitespace in the second half of the
/// window (so no word is cut), else the character limit itself.
fn end_after(text: &str, start: usize, max_chars: usize) -> usize {
    let rest = &text[start..];
    let limit = match rest.char_indices().nth(max_chars) {
        None => return text.len(),
        Some((i, _)) => i,
    };
    let half = rest.char_indices().nth(max_chars / 2).map_or(0, |(i, _)| i);
    match rest[half..limit].rfind(char::is_whitespace) {
        Some(i) => start + half + i,
        None => start + limit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tantivy::Term;
    use tantivy::query::{BooleanQuery, Occur, PhraseQuery, TermQuery};
    use tantivy::schema::{IndexRecordOption, Schema, TEXT};

    fn fields() -> (Field, Field) {
        let mut b = Schema::builder();
        (
            b.add_text_field("body", TEXT),
            b.add_text_field("subject", TEXT),
        )
    }

    fn term_query(field: Field, word: &str) -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(field, word),
            IndexRecordOption::Basic,
        ))
    }

    fn marked(s: &Snippet) -> Vec<&str> {
        s.highlights.iter().map(|r| &s.text[r.clone()]).collect()
    }

    #[test]
    fn marks_stemmed_matches_in_a_window_starting_near_the_first() {
        let (body, _) = fields();
        let q = term_query(body, "kernel");
        let mut maker = SnippetMaker::new(&*q, body, super::super::analyzer(), 60);
        let text = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod \
                    tempor. The Kernels were patched; the KERNEL boots. Much later text that \
                    mentions kernel again but lies outside of the window.";
        let s = maker.make(text);
        assert_eq!(marked(&s), ["Kernels", "KERNEL"]);
        assert!(s.text.chars().count() <= 60, "{:?}", s.text);
        assert!(s.text.contains("tempor. The Kernels"), "{:?}", s.text);
        assert!(!s.text.contains("again"));
    }

    #[test]
    fn phrase_and_boolean_queries_contribute_their_body_words_only() {
        let (body, subject) = fields();
        let phrase = PhraseQuery::new(vec![
            Term::from_field_text(body, "offlin"),
            Term::from_field_text(body, "search"),
        ]);
        let q = BooleanQuery::new(vec![
            (Occur::Must, Box::new(phrase) as Box<dyn Query>),
            (Occur::Must, term_query(subject, "rust")),
        ]);
        let mut maker = SnippetMaker::new(&q, body, super::super::analyzer(), 160);
        let s = maker.make("rust is not here, but offline searching is");
        assert_eq!(marked(&s), ["offline", "searching"]);
    }

    #[test]
    fn no_body_words_or_no_match_shows_the_beginning() {
        let (body, subject) = fields();
        let q = term_query(subject, "rust");
        let mut maker = SnippetMaker::new(&*q, body, super::super::analyzer(), 20);
        let s = maker.make("rust appears here in the body, but the query asked the subject");
        assert_eq!(s.text, "rust appears here");
        assert!(s.highlights.is_empty());
        let q = term_query(body, "absent");
        let mut maker = SnippetMaker::new(&*q, body, super::super::analyzer(), 20);
        assert_eq!(maker.make("short").text, "short");
        assert_eq!(maker.make("").text, "");
    }

    proptest! {
        #[test]
        fn highlights_are_matching_words_inside_the_text(
            text in "[a-zA-Zäö ,.\n]{0,400}",
            word in "(kernel|patch|sync|ä)",
            max in 5usize..200,
        ) {
            let (body, _) = fields();
            let mut analyzer = super::super::analyzer();
            let stem = {
                let mut s = analyzer.token_stream(&word);
                s.advance();
                s.token().text.clone()
            };
            let q = term_query(body, &stem);
            let mut maker = SnippetMaker::new(&*q, body, super::super::analyzer(), max);
            let s = maker.make(&text);
            prop_assert!(s.text.chars().count() <= max);
            prop_assert!(text.contains(&s.text));
            let mut last = 0;
            for r in &s.highlights {
                prop_assert!(r.start >= last && r.end <= s.text.len());
                last = r.end;
                let mut a = super::super::analyzer();
                let mut ts = a.token_stream(&s.text[r.clone()]);
                prop_assert!(ts.advance());
                prop_assert_eq!(&ts.token().text, &stem);
            }
        }
    }
}
