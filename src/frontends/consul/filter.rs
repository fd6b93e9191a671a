//! Consul's `?filter=` expressions (HashiCorp's go-bexpr grammar), evaluated against the
//! JSON of each result entry: `==`, `!=`, `is empty`, `is not empty`, `in`, `not in`,
//! `contains`, `not contains`, `matches`, `not matches`, joined by `and`, `or`, `not`
//! and parentheses. Values are double-quoted, backquoted or bare words. As in go-bexpr,
//! a selector that goes through a list (`Checks.Status`) matches if any element does,
//! and a selector that does not exist in the entry's shape is refused when the filter
//! is parsed. The client controls the filter, so its size, its nesting (parsing and
//! evaluating recurse), its number of comparisons and its regular expressions are
//! bounded.

use regex::{Regex, RegexBuilder};
use serde_json::Value;

/// A parsed filter.
#[derive(Debug)]
pub struct Filter(Expr);

#[derive(Debug)]
enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Match(Selector, Op),
}

type Selector = Vec<String>;

#[derive(Debug)]
enum Op {
    Equal(String, bool),
    Empty(bool),
    /// `value in selector` / `selector contains value`; false when negated.
    Contains(String, bool),
    Matches(Regex, bool),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Symbol(&'static str),
}

fn tokenize(text: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(at, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' => {
                chars.next();
                tokens.push(Token::Symbol(if c == '(' { "(" } else { ")" }));
            }
            '=' | '!' => {
                chars.next();
                if chars.next_if(|(_, next)| *next == '=').is_none() {
                    return Err(format!("1:{} ({at}): expected \"=\" after {c:?}", at + 2));
                }
                tokens.push(Token::Symbol(if c == '=' { "==" } else { "!=" }));
            }
            '"' | '`' => {
                chars.next();
                let mut value = String::new();
                let mut closed = false;
                while let Some((_, next)) = chars.next() {
                    if next == c {
                        closed = true;
                        break;
                    }
                    if next == '\\' && c == '"' {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                        continue;
                    }
                    value.push(next);
                }
                if !closed {
                    return Err(format!("1:{} ({at}): unterminated string", at + 1));
                }
                tokens.push(Token::Quoted(value));
            }
            _ => {
                let mut word = String::new();
                while let Some(&(_, next)) = chars.peek() {
                    if next.is_whitespace() || "()=!\"`".contains(next) {
                        break;
                    }
                    word.push(next);
                    chars.next();
                    // A selector's `["map key"]` part, quotes and all.
                    if next == '[' {
                        for (_, inner) in chars.by_ref() {
                            word.push(inner);
                            if inner == ']' {
                                break;
                            }
                        }
                    }
                }
                tokens.push(Token::Word(word));
            }
        }
    }
    Ok(tokens)
}

/// The longest filter accepted, in bytes.
pub const MAX_FILTER_BYTES: usize = 4096;
/// Most comparisons in one filter.
const MAX_TERMS: usize = 64;
/// Deepest nesting of `not` and parentheses: parsing and evaluating recurse, and the
/// client chooses the depth.
const MAX_DEPTH: usize = 32;
/// Most `matches` in one filter, and the largest compiled form of each.
const MAX_REGEXES: usize = 8;
const REGEX_SIZE_LIMIT: usize = 64 * 1024;

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
    terms: usize,
    regexes: usize,
}

impl Parser {
    fn peek_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Token::Word(w)) if w == word)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn expect_word(&mut self, word: &str) -> Result<(), String> {
        if self.peek_word(word) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected {word:?} at token {}", self.at + 1))
        }
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.at += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.not()?;
        while self.peek_word("and") {
            self.at += 1;
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.peek_word("not") {
            self.at += 1;
            let inner = self.nested(Parser::not)?;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.primary()
    }

    /// Parses one level deeper, refusing nesting beyond [`MAX_DEPTH`].
    fn nested(&mut self, parse: fn(&mut Parser) -> Result<Expr, String>) -> Result<Expr, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("nested deeper than {MAX_DEPTH} levels"));
        }
        let inner = parse(self);
        self.depth -= 1;
        inner
    }

    fn regex(&mut self) -> Result<Regex, String> {
        self.regexes += 1;
        if self.regexes > MAX_REGEXES {
            return Err(format!("more than {MAX_REGEXES} `matches`"));
        }
        let pattern = self.value()?;
        RegexBuilder::new(&pattern)
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|err| format!("invalid regular expression: {err}"))
    }

    fn value(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Quoted(value)) | Some(Token::Word(value)) => Ok(value),
            other => Err(format!("expected a value, found {other:?}")),
        }
    }

    fn selector(&mut self) -> Result<Selector, String> {
        match self.next() {
            Some(Token::Word(word)) => parse_selector(&word),
            other => Err(format!("expected a selector, found {other:?}")),
        }
    }

    fn primary(&mut self) -> Result<Expr, String> {
        if self.tokens.get(self.at) == Some(&Token::Symbol("(")) {
            self.at += 1;
            let inner = self.nested(Parser::or)?;
            if self.next() != Some(Token::Symbol(")")) {
                return Err("expected \")\"".to_owned());
            }
            return Ok(inner);
        }
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(format!("more than {MAX_TERMS} comparisons"));
        }
        // `"value" in Selector` / `"value" not in Selector`.
        let value_first = matches!(self.tokens.get(self.at), Some(Token::Quoted(_)))
            || matches!(self.tokens.get(self.at + 1), Some(Token::Word(w)) if w == "in")
            || (matches!(self.tokens.get(self.at + 1), Some(Token::Word(w)) if w == "not")
                && matches!(self.tokens.get(self.at + 2), Some(Token::Word(w)) if w == "in"));
        if value_first {
            let value = self.value()?;
            let negated = self.peek_word("not");
            if negated {
                self.at += 1;
            }
            self.expect_word("in")?;
            let selector = self.selector()?;
            return Ok(Expr::Match(selector, Op::Contains(value, !negated)));
        }
        let selector = self.selector()?;
        let op = match self.next() {
            Some(Token::Symbol("==")) => Op::Equal(self.value()?, true),
            Some(Token::Symbol("!=")) => Op::Equal(self.value()?, false),
            Some(Token::Word(word)) => match word.as_str() {
                "is" => {
                    let negated = self.peek_word("not");
                    if negated {
                        self.at += 1;
                    }
                    self.expect_word("empty")?;
                    Op::Empty(!negated)
                }
                "contains" => Op::Contains(self.value()?, true),
                "matches" => Op::Matches(self.regex()?, true),
                "not" => match self.next() {
                    Some(Token::Word(w)) if w == "contains" => Op::Contains(self.value()?, false),
                    Some(Token::Word(w)) if w == "matches" => Op::Matches(self.regex()?, false),
                    other => return Err(format!("unexpected {other:?} after \"not\"")),
                },
                other => return Err(format!("unknown operator {other:?}")),
            },
            other => return Err(format!("expected an operator, found {other:?}")),
        };
        Ok(Expr::Match(selector, op))
    }
}

/// `Service.Meta.key` or `Service.Meta["key with dots"]`.
fn parse_selector(text: &str) -> Result<Selector, String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(inner) = rest.strip_prefix("[\"") {
            let end = inner
                .find("\"]")
                .ok_or_else(|| format!("bad selector {text:?}"))?;
            parts.push(inner[..end].to_owned());
            rest = inner[end + 2..].trim_start_matches('.');
            continue;
        }
        let end = rest.find(['.', '[']).unwrap_or(rest.len());
        let part = &rest[..end];
        let valid = !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(format!("bad selector {text:?}"));
        }
        parts.push(part.to_owned());
        rest = rest[end..].strip_prefix('.').unwrap_or(&rest[end..]);
    }
    Ok(parts)
}

/// Whether a field of this name holds a map with keys of the user's choosing.
fn is_map(field: &str) -> bool {
    field.ends_with("Meta") || field.ends_with("TaggedAddresses")
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, String> {
        if text.len() > MAX_FILTER_BYTES {
            return Err(format!("longer than {MAX_FILTER_BYTES} bytes"));
        }
        let tokens = tokenize(text)?;
        let mut parser = Parser {
            tokens,
            at: 0,
            depth: 0,
            terms: 0,
            regexes: 0,
        };
        let expr = parser.or()?;
        if parser.at < parser.tokens.len() {
            return Err(format!(
                "unexpected {:?} at token {}",
                parser.tokens[parser.at],
                parser.at + 1
            ));
        }
        Ok(Filter(expr))
    }

    /// Refuses selectors that do not exist in `shape` (an example entry), as go-bexpr
    /// refuses selectors its type does not have.
    pub fn check_selectors(&self, shape: &Value) -> Result<(), String> {
        fn walk(expr: &Expr, shape: &Value) -> Result<(), String> {
            match expr {
                Expr::And(a, b) | Expr::Or(a, b) => walk(a, shape).and(walk(b, shape)),
                Expr::Not(inner) => walk(inner, shape),
                Expr::Match(selector, _) => valid(selector, shape)
                    .then_some(())
                    .ok_or_else(|| format!("Selector {:?} is not valid", selector.join("."))),
            }
        }
        fn valid(selector: &[String], shape: &Value) -> bool {
            let Some((first, rest)) = selector.split_first() else {
                return true;
            };
            match shape {
                Value::Array(items) => items.first().is_none_or(|item| valid(selector, item)),
                Value::Object(fields) => match fields.get(first) {
                    Some(value) if is_map(first) => rest.len() <= 1 || value.is_object(),
                    Some(value) => valid(rest, value),
                    None => false,
                },
                _ => false,
            }
        }
        walk(&self.0, shape)
    }

    pub fn matches(&self, entry: &Value) -> bool {
        eval(&self.0, entry)
    }
}

fn eval(expr: &Expr, entry: &Value) -> bool {
    match expr {
        Expr::And(a, b) => eval(a, entry) && eval(b, entry),
        Expr::Or(a, b) => eval(a, entry) || eval(b, entry),
        Expr::Not(inner) => !eval(inner, entry),
        Expr::Match(selector, op) => {
            let mut found = Vec::new();
            resolve(entry, selector, &mut found);
            match op {
                Op::Equal(value, true) => found.iter().any(|v| scalar_eq(v, value)),
                Op::Equal(value, false) => {
                    found.is_empty() || found.iter().any(|v| !scalar_eq(v, value))
                }
                Op::Empty(empty) => {
                    let is_empty = found.is_empty() || found.iter().any(|v| value_empty(v));
                    is_empty == *empty
                }
                Op::Contains(value, yes) => found.iter().any(|v| contains(v, value)) == *yes,
                Op::Matches(regex, yes) => {
                    found
                        .iter()
                        .any(|v| v.as_str().is_some_and(|s| regex.is_match(s)))
                        == *yes
                }
            }
        }
    }
}

/// The values `selector` reaches in `value`; lists of objects are gone through (any
/// element may match), lists at the end are kept whole.
fn resolve<'a>(value: &'a Value, selector: &[String], found: &mut Vec<&'a Value>) {
    let Some((first, rest)) = selector.split_first() else {
        found.push(value);
        return;
    };
    match value {
        Value::Object(fields) => {
            if let Some(next) = fields.get(first) {
                resolve(next, rest, found);
            }
        }
        Value::Array(items) => {
            for item in items {
                resolve(item, selector, found);
            }
        }
        _ => {}
    }
}

fn scalar_eq(value: &Value, wanted: &str) -> bool {
    match value {
        Value::String(s) => s == wanted,
        Value::Number(n) => n.to_string() == wanted,
        Value::Bool(b) => wanted.parse::<bool>().is_ok_and(|w| w == *b),
        Value::Array(items) => items.iter().any(|item| scalar_eq(item, wanted)),
        _ => false,
    }
}

fn value_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.is_empty(),
        _ => false,
    }
}

fn contains(value: &Value, wanted: &str) -> bool {
    match value {
        Value::String(s) => s.contains(wanted),
        Value::Array(items) => items.iter().any(|item| scalar_eq(item, wanted)),
        Value::Object(fields) => fields.contains_key(wanted),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry() -> Value {
        json!({
            "Node": {"Node": "n1", "Meta": {"rack": "r1"}},
            "Service": {"ID": "web-1", "Tags": ["v1", "blue"], "Meta": {"version": "1.2"}, "Port": 8080},
            "Checks": [{"Status": "passing"}, {"Status": "critical"}]
        })
    }

    fn check(text: &str) -> bool {
        Filter::parse(text).unwrap().matches(&entry())
    }

    #[test]
    fn the_common_expressions_match_as_in_consul() {
        assert!(check(r#"Service.Tags contains "v1""#));
        assert!(check(r#""blue" in Service.Tags"#));
        assert!(!check(r#""green" in Service.Tags"#));
        assert!(check(r#""green" not in Service.Tags"#));
        assert!(check(r#"Service.Meta.version == "1.2""#));
        assert!(check("Node.Meta.rack == r1"));
        assert!(check("Checks.Status == passing"), "any check passing");
        assert!(check("Checks.Status != passing"), "any check not passing");
        assert!(check("Service.Port == 8080"));
        assert!(check(r#"Service.ID matches "^web-""#));
        assert!(check("Service.Meta.missing is empty"));
        assert!(check("Service.Meta.missing != x"));
        assert!(!check("Service.Meta.missing == x"));
        assert!(check(
            r#"(Service.ID == "web-1" or Service.ID == "x") and not Service.Tags contains "v9""#
        ));
        assert!(check("Service.Meta is not empty"));
        assert!(check(r#"Service.Meta["version"] == `1.2`"#));
    }

    #[test]
    fn bad_filters_and_unknown_selectors_are_refused() {
        for bad in [
            "Service.ID ==",
            "Service.ID = x",
            "(Service.ID == x",
            "Service.ID like x",
            "\"x\" in",
            "Service.ID == \"open",
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad}");
        }
        let filter = Filter::parse("Service.Bogus == x").unwrap();
        assert!(filter.check_selectors(&entry()).is_err());
        let filter = Filter::parse("Service.Meta.anything == x and Checks.Status == a").unwrap();
        assert!(filter.check_selectors(&entry()).is_ok());
    }

    #[test]
    fn filters_the_client_makes_too_big_are_refused_before_they_cost_anything() {
        let deep = format!("{}Service.ID == x{}", "(".repeat(3000), ")".repeat(3000));
        assert!(Filter::parse(&deep).is_err());
        let nots = format!("{}Service.ID == x", "not ".repeat(100));
        assert!(Filter::parse(&nots).unwrap_err().contains("nested"));
        let long = ["Service.ID == x"; 65].join(" and ");
        assert!(Filter::parse(&long).unwrap_err().contains("comparisons"));
        let regexes = [r"Service.ID matches `\w{200}`"; 9].join(" or ");
        assert!(Filter::parse(&regexes).is_err());
        let huge = r"Service.ID matches `\w{5000}`";
        assert!(Filter::parse(huge)
            .unwrap_err()
            .contains("regular expression"));
        let within = format!("{}Service.ID == `web-1`{}", "(".repeat(30), ")".repeat(30));
        assert!(Filter::parse(&within).unwrap().matches(&entry()));
    }
}
