//! The search query language, close to notmuch's, parsed into a tree. Pure: no index, no clock
//! (relative dates are resolved against a `now` the caller passes).
//!
//! ```text
//! query    := or
//! or       := and ("OR" and)*
//! and      := unary (["AND"] unary)*          -- juxtaposition means AND
//! unary    := ("NOT" | "-") unary | primary
//! primary  := "(" or ")" | prefix ":" value | word | "phrase"
//! ```
//! Prefixes: `from: to: cc: subject: body: folder: account: id: attachment: has: flag: tag:
//! date: before: after: size:`. Errors give the 1-based character position.

use std::fmt;

/// A text field a word or phrase can be searched in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TextField {
    /// From header (names and addresses).
    From,
    /// To header.
    To,
    /// Cc header.
    Cc,
    /// Subject.
    Subject,
    /// Text of the body (text/plain, text/html as text).
    Body,
    /// Attachment file names.
    Attachment,
}

/// A message flag as the query language names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagName {
    /// \Seen.
    Seen,
    /// Not \Seen.
    Unread,
    /// \Flagged.
    Flagged,
    /// \Answered.
    Answered,
    /// \Draft.
    Draft,
    /// \Deleted (trashed locally).
    Deleted,
    /// $Forwarded.
    Forwarded,
}

/// A size comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SizeOp {
    /// `>`.
    Greater,
    /// `>=`.
    AtLeast,
    /// `<`.
    Less,
    /// `<=`.
    AtMost,
    /// `=` or no operator.
    Equal,
}

/// The parsed query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// Every message (the empty query, or `*`).
    All,
    /// All must match.
    And(Vec<Query>),
    /// Any may match.
    Or(Vec<Query>),
    /// Must not match.
    Not(Box<Query>),
    /// A word (or a phrase when `phrase`) in one field, or in the default fields when `None`
    /// (subject, from, to, cc, body).
    Text {
        /// The field, or the default ones.
        field: Option<TextField>,
        /// The words as written.
        text: String,
        /// Quoted: the words in this order.
        phrase: bool,
    },
    /// In a folder: exact name, or every folder starting with `prefix` when written `name*`.
    Folder {
        /// Canonical folder name (or its start).
        name: String,
        /// `name*`.
        prefix: bool,
    },
    /// In an account.
    Account(String),
    /// Message-ID, without angle brackets.
    Id(String),
    /// Has at least one attachment.
    HasAttachment,
    /// A flag.
    Flag(FlagName),
    /// A keyword (IMAP keyword / Maildir dovecot-keywords name), lower-cased.
    Tag(String),
    /// Date within [from, to): Unix seconds; `None` is open.
    Date {
        /// Inclusive start.
        from: Option<i64>,
        /// Exclusive end.
        to: Option<i64>,
    },
    /// Size in bytes.
    Size(SizeOp, u64),
}

/// Why a query did not parse: what and where (1-based character position).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based character position in the query.
    pub position: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "query error at position {}: {}",
            self.position, self.message
        )
    }
}

impl std::error::Error for ParseError {}

/// The prefixes the language knows, for error messages.
pub const PREFIXES: &[&str] = &[
    "from",
    "to",
    "cc",
    "subject",
    "body",
    "folder",
    "account",
    "id",
    "attachment",
    "has",
    "flag",
    "tag",
    "date",
    "before",
    "after",
    "size",
];

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    /// A bare word, possibly `prefix:value` (split later).
    Word(String),
    /// A quoted phrase (without a prefix).
    Quoted(String),
    /// `prefix:"quoted value"`.
    PrefixedQuoted(String, String),
}

#[derive(Clone, Debug)]
struct Spanned {
    token: Token,
    /// 1-based character position.
    pos: usize,
}

fn err<T>(position: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        position,
        message: message.into(),
    })
}

fn lex(input: &str) -> Result<Vec<Spanned>, ParseError> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let read_quoted = |start: usize| -> Result<(String, usize), ParseError> {
        // chars[start] is the opening quote
        let mut j = start + 1;
        let mut text = String::new();
        while j < chars.len() && chars[j] != '"' {
            text.push(chars[j]);
            j += 1;
        }
        if j >= chars.len() {
            return err(start + 1, "unbalanced quote: this \" is never closed");
        }
        Ok((text, j + 1))
    };
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            out.push(Spanned {
                token: Token::Open,
                pos: i + 1,
            });
            i += 1;
        } else if c == ')' {
            out.push(Spanned {
                token: Token::Close,
                pos: i + 1,
            });
            i += 1;
        } else if c == '"' {
            let (text, next) = read_quoted(i)?;
            out.push(Spanned {
                token: Token::Quoted(text),
                pos: i + 1,
            });
            i = next;
        } else {
            let start = i;
            let mut word = String::new();
            while i < chars.len() && !chars[i].is_whitespace() && chars[i] != '(' && chars[i] != ')'
            {
                if chars[i] == '"' && word.ends_with(':') {
                    let (text, next) = read_quoted(i)?;
                    word.pop();
                    out.push(Spanned {
                        token: Token::PrefixedQuoted(word.clone(), text),
                        pos: start + 1,
                    });
                    word.clear();
                    i = next;
                    break;
                }
                word.push(chars[i]);
                i += 1;
            }
            if !word.is_empty() {
                out.push(Spanned {
                    token: Token::Word(word),
                    pos: start + 1,
                });
            }
        }
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: Vec<Spanned>,
    at: usize,
    now: i64,
    end_pos: usize,
    _input: &'a str,
}

/// Parses `input`; relative dates (`-30d`) count back from `now` (Unix seconds).
pub fn parse(input: &str, now: i64) -> Result<Query, ParseError> {
    let tokens = lex(input)?;
    if tokens.is_empty() {
        return Ok(Query::All);
    }
    let mut p = Parser {
        tokens,
        at: 0,
        now,
        end_pos: input.chars().count() + 1,
        _input: input,
    };
    let q = p.or()?;
    if let Some(t) = p.tokens.get(p.at) {
        return match t.token {
            Token::Close => err(t.pos, "unbalanced parenthesis: this ) has no matching ("),
            _ => err(t.pos, "unexpected text"),
        };
    }
    Ok(q)
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Spanned> {
        self.tokens.get(self.at)
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Spanned { token: Token::Word(x), .. }) if x == w)
    }

    fn or(&mut self) -> Result<Query, ParseError> {
        let mut parts = vec![self.and()?];
        while self.is_word("OR") {
            self.at += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Query::Or(parts)
        })
    }

    fn and(&mut self) -> Result<Query, ParseError> {
        let mut parts = vec![self.unary()?];
        loop {
            match self.peek() {
                None => break,
                Some(Spanned {
                    token: Token::Close,
                    ..
                }) => break,
                Some(Spanned {
                    token: Token::Word(w),
                    ..
                }) if w == "OR" => break,
                Some(Spanned {
                    token: Token::Word(w),
                    ..
                }) if w == "AND" => {
                    self.at += 1;
                    parts.push(self.unary()?);
                }
                Some(_) => parts.push(self.unary()?),
            }
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Query::And(parts)
        })
    }

    fn unary(&mut self) -> Result<Query, ParseError> {
        let Some(t) = self.peek().cloned() else {
            return err(self.end_pos, "the query ends where a term was expected");
        };
        match &t.token {
            Token::Word(w) if w == "NOT" => {
                self.at += 1;
                Ok(Query::Not(Box::new(self.unary()?)))
            }
            Token::Word(w) if w.starts_with('-') && w.len() > 1 => {
                // -term: strip the minus and parse the rest as a primary.
                let rest = w[1..].to_string();
                self.tokens[self.at] = Spanned {
                    token: Token::Word(rest),
                    pos: t.pos + 1,
                };
                Ok(Query::Not(Box::new(self.primary()?)))
            }
            Token::Word(w) if w == "-" => {
                self.at += 1;
                Ok(Query::Not(Box::new(self.unary()?)))
            }
            _ => self.primary(),
        }
    }

    fn primary(&mut self) -> Result<Query, ParseError> {
        let Some(t) = self.peek().cloned() else {
            return err(self.end_pos, "the query ends where a term was expected");
        };
        self.at += 1;
        match t.token {
            Token::Open => {
                let q = self.or()?;
                match self.peek() {
                    Some(Spanned {
                        token: Token::Close,
                        ..
                    }) => {
                        self.at += 1;
                        Ok(q)
                    }
                    _ => err(t.pos, "unbalanced parenthesis: this ( is never closed"),
                }
            }
            Token::Close => err(t.pos, "unbalanced parenthesis: this ) has no matching ("),
            Token::Quoted(text) => Ok(Query::Text {
                field: None,
                text,
                phrase: true,
            }),
            Token::PrefixedQuoted(prefix, value) => self.prefixed(&prefix, &value, true, t.pos),
            Token::Word(w) => {
                if w == "AND" || w == "OR" {
                    return err(t.pos, format!("{w} needs a term on both sides"));
                }
                if w == "*" {
                    return Ok(Query::All);
                }
                match w.split_once(':') {
                    Some((prefix, value))
                        if !prefix.is_empty()
                            && prefix.chars().all(|c| c.is_ascii_alphabetic()) =>
                    {
                        self.prefixed(prefix, value, false, t.pos)
                    }
                    _ => Ok(Query::Text {
                        field: None,
                        text: w,
                        phrase: false,
                    }),
                }
            }
        }
    }

    fn prefixed(
        &self,
        prefix: &str,
        value: &str,
        quoted: bool,
        pos: usize,
    ) -> Result<Query, ParseError> {
        let value_pos = pos + prefix.chars().count() + 1;
        if value.is_empty() {
            return err(value_pos, format!("{prefix}: needs a value"));
        }
        let text = |field| {
            Ok(Query::Text {
                field: Some(field),
                text: value.to_string(),
                phrase: quoted,
            })
        };
        match prefix.to_ascii_lowercase().as_str() {
            "from" => text(TextField::From),
            "to" => text(TextField::To),
            "cc" => text(TextField::Cc),
            "subject" => text(TextField::Subject),
            "body" => text(TextField::Body),
            "attachment" => text(TextField::Attachment),
            "folder" => Ok(match value.strip_suffix('*') {
                Some(start) => Query::Folder {
                    name: start.to_string(),
                    prefix: true,
                },
                None => Query::Folder {
                    name: value.to_string(),
                    prefix: false,
                },
            }),
            "account" => Ok(Query::Account(value.to_string())),
            "id" => Ok(Query::Id(
                value
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string(),
            )),
            "has" => match value.to_ascii_lowercase().as_str() {
                "attachment" => Ok(Query::HasAttachment),
                other => err(
                    value_pos,
                    format!("has:{other} is not known (has:attachment is)"),
                ),
            },
            "flag" => {
                let f = match value.to_ascii_lowercase().as_str() {
                    "seen" | "read" => FlagName::Seen,
                    "unread" | "unseen" => FlagName::Unread,
                    "flagged" => FlagName::Flagged,
                    "answered" | "replied" => FlagName::Answered,
                    "draft" => FlagName::Draft,
                    "deleted" | "trashed" => FlagName::Deleted,
                    "forwarded" | "passed" => FlagName::Forwarded,
                    other => {
                        return err(
                            value_pos,
                            format!(
                                "flag:{other} is not known (seen, unread, flagged, answered, draft, deleted, forwarded)"
                            ),
                        );
                    }
                };
                Ok(Query::Flag(f))
            }
            "tag" => Ok(Query::Tag(value.to_lowercase())),
            "date" => {
                let (from, to) = match value.split_once("..") {
                    Some((a, b)) => (
                        self.date_bound(a, value_pos, false)?,
                        self.date_bound(b, value_pos + a.chars().count() + 2, true)?,
                    ),
                    None => (
                        self.date_bound(value, value_pos, false)?,
                        self.date_bound(value, value_pos, true)?,
                    ),
                };
                if from.is_none() && to.is_none() {
                    return err(
                        value_pos,
                        "date: needs at least one end (date:2024-01-01.. or date:..2024-06-30)",
                    );
                }
                Ok(Query::Date { from, to })
            }
            "after" => Ok(Query::Date {
                from: self.required_date(value, value_pos, false)?,
                to: None,
            }),
            "before" => Ok(Query::Date {
                from: None,
                to: self.required_date(value, value_pos, false)?,
            }),
            "size" => parse_size(value, value_pos),
            other => err(
                pos,
                format!(
                    "unknown prefix \"{other}:\" (known: {})",
                    PREFIXES.join(", ")
                ),
            ),
        }
    }

    fn required_date(&self, text: &str, pos: usize, end: bool) -> Result<Option<i64>, ParseError> {
        match self.date_bound(text, pos, end)? {
            Some(t) => Ok(Some(t)),
            None => err(pos, "a date is needed here"),
        }
    }

    /// A date (`YYYY-MM-DD`, `YYYY-MM`, `YYYY`) or a relative one (`-30d`, `-2w`, `-6m`, `-1y`;
    /// also `today`, `yesterday`). As a start: the beginning of that day/month/year; as an end
    /// (`end`): the beginning of the next one, so `date:2024-01-01..2024-06-30` includes June 30.
    fn date_bound(&self, text: &str, pos: usize, end: bool) -> Result<Option<i64>, ParseError> {
        const DAY: i64 = 86_400;
        if text.is_empty() {
            return Ok(None);
        }
        let today = self.now - self.now.rem_euclid(DAY);
        let relative = |days: i64| Ok(Some(today - days * DAY + if end { DAY } else { 0 }));
        match text {
            "today" => return relative(0),
            "yesterday" => return relative(1),
            _ => {}
        }
        if let Some(rest) = text.strip_prefix('-') {
            let (n, unit) = rest.split_at(rest.len().saturating_sub(1));
            let Ok(n) = n.parse::<i64>() else {
                return err(
                    pos,
                    format!("cannot read the relative date {text:?} (like -30d, -2w, -6m, -1y)"),
                );
            };
            let days = match unit {
                "d" => n,
                "w" => n * 7,
                "m" => n * 30,
                "y" => n * 365,
                _ => return err(pos, format!("unknown unit in {text:?} (d, w, m or y)")),
            };
            return relative(days);
        }
        let parts: Vec<&str> = text.split('-').collect();
        let num = |s: &str| s.parse::<i16>().ok();
        let (y, m, d, step) = match parts.as_slice() {
            [y] => (num(y), Some(1), Some(1), "year"),
            [y, m] => (num(y), num(m).map(|v| v as i8), Some(1), "month"),
            [y, m, d] => (
                num(y),
                num(m).map(|v| v as i8),
                num(d).map(|v| v as i8),
                "day",
            ),
            _ => (None, None, None, ""),
        };
        let (Some(y), Some(m), Some(d)) = (y, m, d) else {
            return err(
                pos,
                format!("cannot read the date {text:?} (YYYY-MM-DD, YYYY-MM, YYYY or -30d)"),
            );
        };
        let Ok(date) = jiff::civil::Date::new(y, m, d) else {
            return err(pos, format!("{text:?} is not a calendar date"));
        };
        let date = if end {
            let span = match step {
                "year" => jiff::Span::new().years(1),
                "month" => jiff::Span::new().months(1),
                _ => jiff::Span::new().days(1),
            };
            match date.checked_add(span) {
                Ok(d) => d,
                Err(_) => return err(pos, format!("{text:?} is out of range")),
            }
        } else {
            date
        };
        let ts = date
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp().as_second())
            .or_else(|_| err(pos, format!("{text:?} is out of range")))?;
        Ok(Some(ts))
    }
}

fn parse_size(value: &str, pos: usize) -> Result<Query, ParseError> {
    let (op, rest) = if let Some(r) = value.strip_prefix(">=") {
        (SizeOp::AtLeast, r)
    } else if let Some(r) = value.strip_prefix("<=") {
        (SizeOp::AtMost, r)
    } else if let Some(r) = value.strip_prefix('>') {
        (SizeOp::Greater, r)
    } else if let Some(r) = value.strip_prefix('<') {
        (SizeOp::Less, r)
    } else if let Some(r) = value.strip_prefix('=') {
        (SizeOp::Equal, r)
    } else {
        (SizeOp::Equal, value)
    };
    let (digits, mult) = match rest.chars().last() {
        Some('k' | 'K') => (&rest[..rest.len() - 1], 1024),
        Some('m' | 'M') => (&rest[..rest.len() - 1], 1024 * 1024),
        Some('g' | 'G') => (&rest[..rest.len() - 1], 1024 * 1024 * 1024),
        _ => (rest, 1),
    };
    match digits.parse::<u64>() {
        Ok(n) => Ok(Query::Size(op, n.saturating_mul(mult))),
        Err(_) => err(
            pos,
            format!("cannot read the size {value:?} (like >1M, <=500k, 2048)"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_735_689_600; // 2025-01-01T00:00:00Z

    fn p(s: &str) -> Query {
        parse(s, NOW).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn word(w: &str) -> Query {
        Query::Text {
            field: None,
            text: w.into(),
            phrase: false,
        }
    }

    #[test]
    fn words_phrases_and_boolean_operators() {
        assert_eq!(p(""), Query::All);
        assert_eq!(p("rust"), word("rust"));
        assert_eq!(
            p("rust tokio"),
            Query::And(vec![word("rust"), word("tokio")])
        );
        assert_eq!(p("rust AND tokio"), p("rust tokio"));
        assert_eq!(
            p("rust OR go -java"),
            Query::Or(vec![
                word("rust"),
                Query::And(vec![word("go"), Query::Not(Box::new(word("java")))])
            ])
        );
        assert_eq!(
            p("NOT (a OR b)"),
            Query::Not(Box::new(Query::Or(vec![word("a"), word("b")])))
        );
        assert_eq!(
            p("\"release notes\""),
            Query::Text {
                field: None,
                text: "release notes".into(),
                phrase: true
            }
        );
        assert_eq!(
            p("from:\"Jane Doe\""),
            Query::Text {
                field: Some(TextField::From),
                text: "Jane Doe".into(),
                phrase: true
            }
        );
    }

    #[test]
    fn prefixes() {
        assert_eq!(
            p("folder:Lists/*"),
            Query::Folder {
                name: "Lists/".into(),
                prefix: true
            }
        );
        assert_eq!(p("id:<a@b>"), Query::Id("a@b".into()));
        assert_eq!(p("has:attachment"), Query::HasAttachment);
        assert_eq!(p("flag:unread"), Query::Flag(FlagName::Unread));
        assert_eq!(p("tag:Work"), Query::Tag("work".into()));
        assert_eq!(p("size:>1M"), Query::Size(SizeOp::Greater, 1024 * 1024));
        assert_eq!(p("size:<=500k"), Query::Size(SizeOp::AtMost, 500 * 1024));
        assert_eq!(p("account:work"), Query::Account("work".into()));
    }

    #[test]
    fn dates_absolute_relative_and_ranges() {
        let day = 86_400;
        let jan1_2024 = 1_704_067_200;
        assert_eq!(
            p("date:2024-01-01..2024-01-31"),
            Query::Date {
                from: Some(jan1_2024),
                to: Some(jan1_2024 + 31 * day)
            }
        );
        assert_eq!(
            p("date:2024"),
            Query::Date {
                from: Some(jan1_2024),
                to: Some(jan1_2024 + 366 * day)
            }
        );
        assert_eq!(
            p("after:-30d"),
            Query::Date {
                from: Some(NOW - 30 * day),
                to: None
            }
        );
        assert_eq!(
            p("before:2024-01-01"),
            Query::Date {
                from: None,
                to: Some(jan1_2024)
            }
        );
        assert_eq!(
            p("date:..2024-01-01"),
            Query::Date {
                from: None,
                to: Some(jan1_2024 + day)
            }
        );
    }

    #[test]
    fn errors_name_the_position() {
        let e = |s: &str| parse(s, NOW).unwrap_err();
        let x = e("rust (tokio");
        assert_eq!(x.position, 6, "{x}");
        assert!(x.message.contains("never closed"), "{x}");
        let x = e("rust tokio)");
        assert_eq!(x.position, 11);
        assert!(x.message.contains("no matching ("), "{x}");
        let x = e("rust frm:jane");
        assert_eq!(x.position, 6);
        assert!(x.message.contains("unknown prefix \"frm:\""), "{x}");
        let x = e("from:\"jane");
        assert_eq!(x.position, 6);
        assert!(x.message.contains("unbalanced quote"), "{x}");
        assert_eq!(e("date:2024-13-01").position, 6);
        assert!(e("size:>lots").message.contains("size"));
        assert!(e("flag:shiny").message.contains("flag:shiny"));
        assert!(e("a OR").message.contains("ends where a term was expected"));
        assert!(e("OR a").message.contains("needs a term"));
        assert!(e("subject:").message.contains("needs a value"));
    }

    #[test]
    fn display_includes_position() {
        let x = parse("(a", NOW).unwrap_err();
        assert_eq!(
            x.to_string(),
            "query error at position 1: unbalanced parenthesis: this ( is never closed"
        );
    }
}
