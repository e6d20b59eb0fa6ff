//! Running a parsed query ([`crate::search::query::Query`]) against the index: the query tree
//! becomes tantivy queries (words through the same analyzer as the documents), hits come back
//! with their stored fields and a snippet.

use super::snippet::SnippetMaker;
use super::{IndexError, MailIndex};
use crate::search::query::{FlagName, Query, SizeOp, TextField};
use std::ops::Bound;
use tantivy::collector::TopDocs;
use tantivy::query::{
    AllQuery, BooleanQuery, EmptyQuery, Occur, PhraseQuery, Query as TQuery, RangeQuery,
    RegexQuery, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption, Value};
use tantivy::{DocAddress, Order, TantivyDocument, Term};

/// How hits are ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortOrder {
    /// Newest first.
    Date,
    /// Best match first.
    Relevance,
}

/// One search hit.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Hit {
    /// Message-ID (without brackets).
    #[serde(rename = "message-id")]
    pub message_id: String,
    /// The file.
    pub path: String,
    /// Date, RFC 3339.
    pub date: String,
    /// From.
    pub from: String,
    /// To.
    pub to: String,
    /// Subject.
    pub subject: String,
    /// Folder.
    pub folder: String,
    /// Account.
    pub account: String,
    /// Flags and tags.
    pub flags: Vec<String>,
    /// A fragment of the body around the matches.
    pub snippet: String,
    /// Highlighted byte ranges of `snippet`.
    #[serde(skip)]
    pub highlights: Vec<std::ops::Range<usize>>,
    /// Relevance score (0 when sorted by date).
    pub score: f32,
}

impl MailIndex {
    /// Searches; at most `limit` hits.
    pub fn search(
        &self,
        query: &Query,
        limit: usize,
        order: SortOrder,
    ) -> Result<Vec<Hit>, IndexError> {
        let reader = self
            .index
            .reader_builder()
            .reload_policy(tantivy::ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| self.terr(e))?;
        let searcher = reader.searcher();
        let q = self.build(query)?;
        let limit = limit.max(1);
        let addresses: Vec<(f32, DocAddress)> = match order {
            SortOrder::Relevance => searcher
                .search(&q, &TopDocs::with_limit(limit).order_by_score())
                .map_err(|e| self.terr(e))?,
            SortOrder::Date => self
                .newest(&searcher, &*q, limit)?
                .into_iter()
                .map(|a| (0.0, a))
                .collect(),
        };
        let mut snippets = SnippetMaker::new(&*q, self.fields.body, super::analyzer(), 160);
        let f = self.fields;
        let mut hits = Vec::with_capacity(addresses.len());
        for (score, addr) in addresses {
            let doc: TantivyDocument = searcher.doc(addr).map_err(|e| self.terr(e))?;
            let text = |field: Field| {
                doc.get_first(field)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            let all = |field: Field| -> Vec<String> {
                doc.get_all(field)
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            };
            let date = doc
                .get_first(f.date)
                .and_then(|v| v.as_datetime())
                .map(|d| d.into_timestamp_secs())
                .unwrap_or(0);
            let snippet = snippets.make(
                doc.get_first(f.preview)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default(),
            );
            let mut flags = all(f.flag);
            flags.extend(all(f.tag).into_iter().map(|t| format!("tag:{t}")));
            hits.push(Hit {
                message_id: text(f.message_id),
                path: text(f.path),
                date: jiff::Timestamp::from_second(date)
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
                from: text(f.from),
                to: text(f.to),
                subject: text(f.subject),
                folder: text(f.folder),
                account: text(f.account),
                flags,
                snippet: snippet.text,
                highlights: snippet.highlights,
                score,
            });
        }
        if !self.writable {
            // A read-only index serves one command-line search, and the process ends right
            // after: unmapping each segment file one by one here costs more (a few percent of
            // the search) than the kernel's release of the whole address space at exit.
            std::mem::forget(searcher);
            std::mem::forget(reader);
        }
        Ok(hits)
    }

    /// The `limit` newest messages matching `q`, newest first.
    ///
    /// The index keeps each segment's documents sorted newest first (see
    /// [`super::index_settings`]), so a segment's first `limit` matches are its newest, and the
    /// search stops there instead of matching every message and sorting: on a big archive where
    /// the words are common, matching everything (a phrase checked word position by word
    /// position in each message) was most of a search's time, to show 50 messages. An index
    /// without that order (built by tantivy defaults) is searched the long way.
    fn newest(
        &self,
        searcher: &tantivy::Searcher,
        q: &dyn TQuery,
        limit: usize,
    ) -> Result<Vec<DocAddress>, IndexError> {
        use tantivy::{DocSet, TERMINATED};
        if !super::sorted_newest_first(&self.index) {
            return Ok(searcher
                .search(
                    q,
                    &TopDocs::with_limit(limit)
                        .order_by_fast_field::<tantivy::DateTime>("date", Order::Desc),
                )
                .map_err(|e| self.terr(e))?
                .into_iter()
                .map(|(_, a)| a)
                .collect());
        }
        let weight = q
            .weight(tantivy::query::EnableScoring::disabled_from_searcher(
                searcher,
            ))
            .map_err(|e| self.terr(e))?;
        let mut found: Vec<(i64, DocAddress)> = Vec::new();
        for (ord, reader) in searcher.segment_readers().iter().enumerate() {
            let dates = reader
                .fast_fields()
                .date("date")
                .map_err(|e| self.terr(e))?;
            let alive = reader.alive_bitset();
            let mut scorer = weight.scorer(reader, 1.0).map_err(|e| self.terr(e))?;
            let mut taken = 0;
            let mut doc = scorer.doc();
            while doc != TERMINATED && taken < limit {
                if alive.is_none_or(|a| a.is_alive(doc)) {
                    let date = dates
                        .first(doc)
                        .map_or(i64::MIN, |d| d.into_timestamp_nanos());
                    found.push((date, DocAddress::new(ord as u32, doc)));
                    taken += 1;
                }
                doc = scorer.advance();
            }
        }
        // Newest first across segments; a stable sort keeps each segment's own order on ties.
        found.sort_by_key(|f| std::cmp::Reverse(f.0));
        found.truncate(limit);
        Ok(found.into_iter().map(|(_, a)| a).collect())
    }

    /// The tantivy query for a query tree.
    fn build(&self, q: &Query) -> Result<Box<dyn TQuery>, IndexError> {
        let f = self.fields;
        let term = |field: Field, text: &str| -> Box<dyn TQuery> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, text),
                IndexRecordOption::Basic,
            ))
        };
        Ok(match q {
            Query::All => Box::new(AllQuery),
            Query::And(parts) => {
                let mut clauses = Vec::new();
                let mut positive = false;
                for p in parts {
                    match p {
                        Query::Not(inner) => clauses.push((Occur::MustNot, self.build(inner)?)),
                        other => {
                            positive = true;
                            clauses.push((Occur::Must, self.build(other)?));
                        }
                    }
                }
                if !positive {
                    clauses.push((Occur::Must, Box::new(AllQuery)));
                }
                Box::new(BooleanQuery::new(clauses))
            }
            Query::Or(parts) => Box::new(BooleanQuery::new(
                parts
                    .iter()
                    .map(|p| Ok((Occur::Should, self.build(p)?)))
                    .collect::<Result<Vec<_>, IndexError>>()?,
            )),
            Query::Not(inner) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, Box::new(AllQuery) as Box<dyn TQuery>),
                (Occur::MustNot, self.build(inner)?),
            ])),
            Query::Text { field, text, .. } => {
                let fields: Vec<Field> = match field {
                    Some(TextField::From) => vec![f.from],
                    Some(TextField::To) => vec![f.to],
                    Some(TextField::Cc) => vec![f.cc],
                    Some(TextField::Subject) => vec![f.subject],
                    Some(TextField::Body) => vec![f.body],
                    Some(TextField::Attachment) => vec![f.attachment],
                    None => vec![f.subject, f.from, f.to, f.cc, f.body],
                };
                let mut per_field: Vec<(Occur, Box<dyn TQuery>)> = Vec::new();
                for field in fields {
                    if let Some(q) = self.words(field, text)? {
                        per_field.push((Occur::Should, q));
                    }
                }
                match per_field.len() {
                    0 => Box::new(EmptyQuery),
                    1 => per_field.pop().expect("one").1,
                    _ => Box::new(BooleanQuery::new(per_field)),
                }
            }
            Query::Folder {
                name,
                prefix: false,
            } => term(f.folder, name),
            Query::Folder { name, prefix: true } => Box::new(
                RegexQuery::from_pattern(&format!("{}.*", regex_escape(name)), f.folder)
                    .map_err(|e| self.terr(e))?,
            ),
            Query::Account(a) => term(f.account, a),
            Query::Id(id) => term(f.message_id, id),
            Query::HasAttachment => Box::new(TermQuery::new(
                Term::from_field_u64(f.has_attachment, 1),
                IndexRecordOption::Basic,
            )),
            Query::Flag(FlagName::Unread) => Box::new(BooleanQuery::new(vec![
                (Occur::Must, Box::new(AllQuery) as Box<dyn TQuery>),
                (Occur::MustNot, term(f.flag, "seen")),
            ])),
            Query::Flag(flag) => term(
                f.flag,
                match flag {
                    FlagName::Seen | FlagName::Unread => "seen",
                    FlagName::Flagged => "flagged",
                    FlagName::Answered => "answered",
                    FlagName::Draft => "draft",
                    FlagName::Deleted => "deleted",
                    FlagName::Forwarded => "forwarded",
                },
            ),
            Query::Tag(t) => term(f.tag, t),
            Query::Date { from, to } => {
                let bound = |t: Option<i64>, included: bool| match t {
                    None => Bound::Unbounded,
                    Some(s) => {
                        let term = Term::from_field_date(
                            f.date,
                            tantivy::DateTime::from_timestamp_secs(s),
                        );
                        if included {
                            Bound::Included(term)
                        } else {
                            Bound::Excluded(term)
                        }
                    }
                };
                Box::new(RangeQuery::new(bound(*from, true), bound(*to, false)))
            }
            Query::Size(op, n) => {
                let t = |v: u64| Term::from_field_u64(f.size, v);
                let (lo, hi) = match op {
                    SizeOp::Greater => (Bound::Excluded(t(*n)), Bound::Unbounded),
                    SizeOp::AtLeast => (Bound::Included(t(*n)), Bound::Unbounded),
                    SizeOp::Less => (Bound::Unbounded, Bound::Excluded(t(*n))),
                    SizeOp::AtMost => (Bound::Unbounded, Bound::Included(t(*n))),
                    SizeOp::Equal => (Bound::Included(t(*n)), Bound::Included(t(*n))),
                };
                Box::new(RangeQuery::new(lo, hi))
            }
        })
    }

    /// Words in one field, through the field's analyzer: one token is a term query, several a
    /// phrase (so `jane@example.org` and "release notes" match in that order); none (all
    /// stopwords or punctuation) is `None`.
    fn words(&self, field: Field, text: &str) -> Result<Option<Box<dyn TQuery>>, IndexError> {
        let mut analyzer = self
            .index
            .tokenizer_for_field(field)
            .map_err(|e| self.terr(e))?;
        let mut stream = analyzer.token_stream(text);
        let mut terms = Vec::new();
        while stream.advance() {
            terms.push(Term::from_field_text(field, &stream.token().text));
        }
        Ok(match terms.len() {
            0 => None,
            1 => Some(Box::new(TermQuery::new(
                terms.pop().expect("one"),
                IndexRecordOption::WithFreqs,
            ))),
            _ => Some(Box::new(PhraseQuery::new(terms))),
        })
    }
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
