//! The customer search `query` of `GET /dfo/3.0/customers` (api-notes §5, §10). The grammar is
//! not documented; the emulator understands what NICE's SDK sends, and says "400" to the rest:
//!
//! - clauses joined by `AND` (any case, outside parentheses and quotes); `OR` is refused;
//! - `FIELD [NOT] IN (v1, v2, …)`, `FIELD [NOT] LIKE v`, `FIELD = v`, `FIELD != v`, `FIELD=v`;
//!   values may be quoted (`'…'` or `"…"`);
//! - fields (any case): `id`, `firstName`, `surname` (or `lastName`), `fullName`,
//!   `identityIdOnExternalPlatform` (or `identity`: any identity), `email` (identities with
//!   `@`), `phone` (identities without `@`);
//! - `email=a@b.comphone=+1555…`: several `key=value` run together with no separator (an SDK
//!   bug) are split at each known key;
//! - anything else is free text: every word must occur (any case) in the full name, an
//!   identity or a custom field value.
//!
//! Comparisons ignore case. `LIKE` with `%` or `_` is SQL's pattern; without them it means
//! "contains". For identities `NOT IN` / `!=` / `NOT LIKE` hold when **no** identity matches.

use super::state::CustomerRec;
use super::wire::full_name;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Id,
    FirstName,
    Surname,
    FullName,
    Identity,
    Email,
    Phone,
}

const FIELDS: &[(&str, Field)] = &[
    ("identityidonexternalplatform", Field::Identity),
    ("identity", Field::Identity),
    ("firstname", Field::FirstName),
    ("surname", Field::Surname),
    ("lastname", Field::Surname),
    ("fullname", Field::FullName),
    ("email", Field::Email),
    ("phone", Field::Phone),
    ("id", Field::Id),
];

fn field(name: &str) -> Option<Field> {
    let lower = name.to_ascii_lowercase();
    FIELDS.iter().find(|(n, _)| *n == lower).map(|(_, f)| *f)
}

#[derive(Debug, Clone, PartialEq)]
enum Test {
    In(Vec<String>),
    Like(String),
    Eq(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Clause {
    Field {
        field: Field,
        negated: bool,
        test: Test,
    },
    Text(Vec<String>),
}

/// A parsed query: all clauses must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct CustomerQuery {
    clauses: Vec<Clause>,
}

/// Splits `q` at the word `AND` outside parentheses and quotes; `OR` there is an error.
fn split_and(q: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    let words: Vec<&str> = q.split(' ').collect();
    for (i, w) in words.iter().enumerate() {
        let at_top = depth == 0 && quote.is_none();
        if at_top && w.eq_ignore_ascii_case("and") && !cur.trim().is_empty() {
            parts.push(std::mem::take(&mut cur));
            continue;
        }
        if at_top && w.eq_ignore_ascii_case("or") && !cur.trim().is_empty() && i + 1 < words.len() {
            return Err(
                "OR is not supported in a customer query; run one search per alternative."
                    .to_owned(),
            );
        }
        for c in w.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '(') => depth += 1,
                (None, ')') => depth -= 1,
                _ => {}
            }
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(w);
    }
    if quote.is_some() || depth != 0 {
        return Err("Unbalanced quotes or parentheses in query.".to_owned());
    }
    if !cur.trim().is_empty() {
        parts.push(cur);
    }
    Ok(parts)
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    for q in ['\'', '"'] {
        if let Some(inner) = v.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner.to_owned();
        }
    }
    v.to_owned()
}

/// `word rest` → (`word`, `rest`).
fn first_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

/// Splits `key=value` pairs run together without a separator at each known `key=`.
fn split_concatenated(text: &str) -> Vec<(Field, String)> {
    let lower = text.to_ascii_lowercase();
    let mut starts: Vec<(usize, usize, Field)> = Vec::new();
    let mut i = 0;
    while i < lower.len() {
        let hit = FIELDS
            .iter()
            .find(|(n, _)| lower[i..].starts_with(n) && lower[i + n.len()..].starts_with('='));
        match hit {
            Some((n, f)) => {
                starts.push((i, i + n.len() + 1, *f));
                i += n.len() + 1;
            }
            None => i += lower[i..].chars().next().map_or(1, char::len_utf8),
        }
    }
    let mut out = Vec::new();
    for (k, (_, value_start, f)) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map_or(text.len(), |n| n.0);
        out.push((*f, unquote(&text[*value_start..end])));
    }
    out
}

fn parse_clause(text: &str) -> Result<Vec<Clause>, String> {
    let text = text.trim();
    let (name, rest) = first_word(text);
    if let Some(f) = field(name) {
        let (op, after) = first_word(rest);
        let (negated, op, after) = if op.eq_ignore_ascii_case("not") {
            let (op2, after2) = first_word(after);
            (true, op2, after2)
        } else {
            (false, op, after)
        };
        if op.eq_ignore_ascii_case("in") || op.to_ascii_lowercase().starts_with("in(") {
            let list = if op.eq_ignore_ascii_case("in") {
                after.to_owned()
            } else {
                format!("{} {after}", &op[2..])
            };
            let inner = list
                .trim()
                .strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .ok_or_else(|| format!("{name} IN needs a list in parentheses."))?;
            let values = inner
                .split(',')
                .map(unquote)
                .filter(|v| !v.is_empty())
                .collect();
            return Ok(vec![Clause::Field {
                field: f,
                negated,
                test: Test::In(values),
            }]);
        }
        if op.eq_ignore_ascii_case("like") {
            return Ok(vec![Clause::Field {
                field: f,
                negated,
                test: Test::Like(unquote(after)),
            }]);
        }
        if op == "=" || op == "!=" {
            return Ok(vec![Clause::Field {
                field: f,
                negated: op == "!=",
                test: Test::Eq(unquote(after)),
            }]);
        }
    }
    // `field=value` without spaces, possibly several run together.
    if let Some((name, _)) = text.split_once('=')
        && field(name.trim().trim_end_matches('!')).is_some()
        && !name.contains(' ')
    {
        if let Some(n) = name.strip_suffix('!') {
            let f = field(n).ok_or_else(|| format!("Unknown field {n}."))?;
            let value = unquote(&text[name.len() + 1..]);
            return Ok(vec![Clause::Field {
                field: f,
                negated: true,
                test: Test::Eq(value),
            }]);
        }
        return Ok(split_concatenated(text)
            .into_iter()
            .map(|(f, v)| Clause::Field {
                field: f,
                negated: false,
                test: Test::Eq(v),
            })
            .collect());
    }
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| unquote(w).to_lowercase())
        .filter(|w| !w.is_empty())
        .collect();
    Ok(if words.is_empty() {
        Vec::new()
    } else {
        vec![Clause::Text(words)]
    })
}

impl CustomerQuery {
    /// Parses `q`; an empty query matches every customer. The error says what is wrong.
    pub(crate) fn parse(q: &str) -> Result<CustomerQuery, String> {
        let mut clauses = Vec::new();
        for part in split_and(q)? {
            clauses.extend(parse_clause(&part)?);
        }
        Ok(CustomerQuery { clauses })
    }

    /// Whether the query has no clause (it matches every card).
    pub(crate) fn is_empty(&self) -> bool {
        self.clauses.is_empty()
    }

    /// Whether customer `c` satisfies every clause.
    pub(crate) fn matches(&self, c: &CustomerRec) -> bool {
        self.clauses.iter().all(|cl| clause_matches(cl, c))
    }
}

/// SQL `LIKE` (`%` any run, `_` one character), case already folded.
fn like(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Dynamic programming over (pattern index, text index).
    let mut row = vec![false; t.len() + 1];
    row[0] = true;
    for pc in &p {
        let mut next = vec![false; t.len() + 1];
        if *pc == '%' {
            let mut any = false;
            for j in 0..=t.len() {
                any |= row[j];
                next[j] = any;
            }
        } else {
            for j in 1..=t.len() {
                next[j] = row[j - 1] && (*pc == '_' || *pc == t[j - 1]);
            }
        }
        row = next;
    }
    row[t.len()]
}

fn test_value(test: &Test, value: &str) -> bool {
    let v = value.to_lowercase();
    match test {
        Test::In(list) => list.iter().any(|x| x.to_lowercase() == v),
        Test::Eq(x) => x.to_lowercase() == v,
        Test::Like(p) => {
            let p = p.to_lowercase();
            if p.contains(['%', '_']) {
                like(&p, &v)
            } else {
                v.contains(&p)
            }
        }
    }
}

fn clause_matches(cl: &Clause, c: &CustomerRec) -> bool {
    match cl {
        Clause::Text(words) => {
            let mut hay: Vec<String> = Vec::new();
            if let Some(n) = full_name(c) {
                hay.push(n.to_lowercase());
            }
            hay.extend(c.identities.iter().map(|i| i.id.to_lowercase()));
            hay.extend(c.custom_fields.iter().map(|f| f.value.to_lowercase()));
            words
                .iter()
                .all(|w| hay.iter().any(|h| h.contains(w.as_str())))
        }
        Clause::Field {
            field,
            negated,
            test,
        } => {
            let values: Vec<String> = match field {
                Field::Id => vec![c.id.clone()],
                Field::FirstName => c.first_name.iter().cloned().collect(),
                Field::Surname => c.surname.iter().cloned().collect(),
                Field::FullName => full_name(c).into_iter().collect(),
                Field::Identity => c.identities.iter().map(|i| i.id.clone()).collect(),
                Field::Email => c
                    .identities
                    .iter()
                    .filter(|i| i.id.contains('@'))
                    .map(|i| i.id.clone())
                    .collect(),
                Field::Phone => c
                    .identities
                    .iter()
                    .filter(|i| !i.id.contains('@'))
                    .map(|i| i.id.clone())
                    .collect(),
            };
            let any = values.iter().any(|v| test_value(test, v));
            any != *negated
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::state::{CustomField, Identity};
    use super::*;

    fn cust(first: &str, last: &str, ids: &[&str]) -> CustomerRec {
        CustomerRec {
            id: "c1".into(),
            seq: 1,
            first_name: Some(first.into()),
            surname: Some(last.into()),
            image: None,
            identities: ids
                .iter()
                .map(|i| Identity {
                    id: (*i).into(),
                    first_name: None,
                    last_name: None,
                    nickname: None,
                    image: None,
                })
                .collect(),
            custom_fields: vec![CustomField {
                ident: "canonical".into(),
                value: "K-77".into(),
                updated_at: String::new(),
            }],
            created_at: String::new(),
            updated_at: String::new(),
            inbound: 0,
            outbound: 0,
            last_interaction_at: None,
        }
    }

    fn m(q: &str, c: &CustomerRec) -> bool {
        CustomerQuery::parse(q).expect(q).matches(c)
    }

    #[test]
    fn the_sdk_shapes_match() {
        let jane = cust("Jane", "Doe", &["jane@example.com", "+15550100"]);
        assert!(m("", &jane));
        assert!(m(
            "identityIdOnExternalPlatform NOT IN (a, b) AND fullName LIKE jane",
            &jane
        ));
        assert!(!m(
            "identityIdOnExternalPlatform NOT IN (a, +15550100) AND fullName LIKE x",
            &jane
        ));
        assert!(m("email=jane@example.com", &jane));
        assert!(
            m("email=JANE@example.comphone=+15550100", &jane),
            "run-together keys"
        );
        assert!(!m("email=jane@example.comphone=+1999", &jane));
        assert!(m("Jane Doe", &jane));
        assert!(m("k-77", &jane), "custom field values are free text");
        assert!(!m("Jane Roe", &jane));
        assert!(m("identityIdOnExternalPlatform IN ('+15550100')", &jane));
        assert!(m("fullName LIKE 'J%e D_e'", &jane));
        assert!(!m("fullName LIKE 'J%x'", &jane));
        assert!(m("surname = doe", &jane));
        assert!(m("lastName != roe", &jane));
        assert!(m("phone=+15550100", &jane));
        assert!(!m("email=+15550100", &jane));
    }

    #[test]
    fn bad_queries_are_refused() {
        assert!(CustomerQuery::parse("firstName = a OR surname = b").is_err());
        assert!(CustomerQuery::parse("identity IN (a, b").is_err());
        assert!(CustomerQuery::parse("fullName LIKE 'x").is_err());
    }
}
