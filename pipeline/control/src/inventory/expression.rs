//! Canary group expressions: a small boolean language over VM fields.
//!
//! ```text
//! tags.role == "web" && region != "us-east-1"
//! critical || instance_type in ["r6i.2xlarge", "r6i.4xlarge"]
//! !(tags.team == "payments") and criticality in ["high", "critical"]
//! ```
//!
//! Fields: `id`, `region`, `instance_type`, `criticality`, `critical`
//! (true/false) and `tags.NAME` (a missing tag equals nothing). Operators:
//! `==`, `!=`, `in [..]`, `not in [..]`, `&&`/`and`, `||`/`or`, `!`/`not`,
//! parentheses. Strings in single or double quotes; bare numbers and
//! `true`/`false` compare as their text.

use bellwether_schemas::VmRecord;
use thiserror::Error;

/// An expression that does not parse, with the column where it went wrong.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("at column {column}: {message}")]
pub struct ExpressionError {
    /// 1-based column in the expression text.
    pub column: usize,
    /// What was expected.
    pub message: String,
}

/// Deepest nesting of parentheses and `!` an expression may have: deeper
/// ones are refused, so no input can exhaust the parser's stack.
pub const MAX_NESTING: usize = 64;

/// A VM field an expression can read.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    Id,
    Region,
    InstanceType,
    Criticality,
    Critical,
    Tag(String),
}

impl Field {
    fn value<'a>(&self, vm: &'a VmRecord) -> Option<&'a str> {
        match self {
            Field::Id => Some(&vm.id),
            Field::Region => Some(&vm.region),
            Field::InstanceType => Some(&vm.instance_type),
            Field::Criticality => Some(vm.criticality.as_str()),
            Field::Critical => Some(if vm.is_critical() { "true" } else { "false" }),
            Field::Tag(name) => vm.tags.get(name).map(String::as_str),
        }
    }
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expression {
    /// Any of the terms (`a || b || c`).
    Or(Vec<Expression>),
    /// All of the terms (`a && b && c`).
    And(Vec<Expression>),
    /// The opposite.
    Not(Box<Expression>),
    /// `field == value` (or `!=` with `equal: false`).
    Compare {
        /// The field.
        field: FieldRef,
        /// `==` (true) or `!=` (false).
        equal: bool,
        /// The literal.
        value: String,
    },
    /// `field in [..]` (or `not in` with `negated`).
    In {
        /// The field.
        field: FieldRef,
        /// `not in`.
        negated: bool,
        /// The literals.
        values: Vec<String>,
    },
    /// A constant.
    Constant(bool),
}

/// A field reference: `id`, `region`, `instance_type`, `criticality`,
/// `critical` or `tags.NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRef(Field);

impl FieldRef {
    /// The field a name refers to, if it is one.
    pub fn parse(name: &str) -> Option<FieldRef> {
        parse_field(name).map(FieldRef)
    }

    /// The field's value on `vm` (None for a missing tag).
    pub fn value<'a>(&self, vm: &'a VmRecord) -> Option<&'a str> {
        self.0.value(vm)
    }
}

impl Expression {
    /// Parses an expression.
    pub fn parse(text: &str) -> Result<Expression, ExpressionError> {
        let tokens = tokenize(text)?;
        let mut parser = Parser {
            tokens,
            at: 0,
            depth: 0,
            len: text.chars().count(),
        };
        let expr = parser.or()?;
        match parser.peek() {
            None => Ok(expr),
            Some((column, token)) => Err(ExpressionError {
                column,
                message: format!(
                    "unexpected {}; expected && or || or the end",
                    token.describe()
                ),
            }),
        }
    }

    /// True when `vm` satisfies the expression.
    pub fn matches(&self, vm: &VmRecord) -> bool {
        match self {
            Expression::Or(terms) => terms.iter().any(|t| t.matches(vm)),
            Expression::And(terms) => terms.iter().all(|t| t.matches(vm)),
            Expression::Not(e) => !e.matches(vm),
            Expression::Compare {
                field,
                equal,
                value,
            } => (field.0.value(vm) == Some(value.as_str())) == *equal,
            Expression::In {
                field,
                negated,
                values,
            } => {
                let found = field
                    .0
                    .value(vm)
                    .is_some_and(|v| values.iter().any(|x| x == v));
                found != *negated
            }
            Expression::Constant(b) => *b,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Eq,
    Ne,
    And,
    Or,
    Not,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Word(w) => format!("`{w}`"),
            Token::Str(s) => format!("string \"{s}\""),
            Token::Eq => "`==`".into(),
            Token::Ne => "`!=`".into(),
            Token::And => "`&&`".into(),
            Token::Or => "`||`".into(),
            Token::Not => "`!`".into(),
            Token::LParen => "`(`".into(),
            Token::RParen => "`)`".into(),
            Token::LBracket => "`[`".into(),
            Token::RBracket => "`]`".into(),
            Token::Comma => "`,`".into(),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<(usize, Token)>, ExpressionError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let err = |i: usize, message: String| ExpressionError {
        column: i + 1,
        message,
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let start = i;
        let token = match c {
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '(' => Token::LParen,
            ')' => Token::RParen,
            '[' => Token::LBracket,
            ']' => Token::RBracket,
            ',' => Token::Comma,
            '=' if next == Some('=') => {
                i += 1;
                Token::Eq
            }
            '!' if next == Some('=') => {
                i += 1;
                Token::Ne
            }
            '!' => Token::Not,
            '&' if next == Some('&') => {
                i += 1;
                Token::And
            }
            '|' if next == Some('|') => {
                i += 1;
                Token::Or
            }
            '"' | '\'' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                while i < chars.len() && chars[i] != quote {
                    s.push(chars[i]);
                    i += 1;
                }
                if i == chars.len() {
                    return Err(err(
                        start,
                        format!("string opened with {quote} is never closed"),
                    ));
                }
                Token::Str(s)
            }
            c if c.is_alphanumeric() || c == '_' || c == '.' || c == '-' => {
                let mut w = String::new();
                while i < chars.len() && (chars[i].is_alphanumeric() || "_.-".contains(chars[i])) {
                    w.push(chars[i]);
                    i += 1;
                }
                tokens.push((
                    start + 1,
                    match w.as_str() {
                        "and" => Token::And,
                        "or" => Token::Or,
                        "not" => Token::Not,
                        _ => Token::Word(w),
                    },
                ));
                continue;
            }
            other => return Err(err(start, format!("unexpected character `{other}`"))),
        };
        tokens.push((start + 1, token));
        i += 1;
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<(usize, Token)>,
    at: usize,
    /// Parentheses and `!` open around the token at `at`.
    depth: usize,
    len: usize,
}

impl Parser {
    fn peek(&self) -> Option<(usize, &Token)> {
        self.tokens.get(self.at).map(|(c, t)| (*c, t))
    }

    fn next(&mut self) -> Option<(usize, Token)> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn end_error(&self, expected: &str) -> ExpressionError {
        ExpressionError {
            column: self.len + 1,
            message: format!("expression ends where {expected} was expected"),
        }
    }

    // Chains of `||` and `&&` are flat lists, so only parentheses and `!`
    // nest; `enter` bounds that nesting.
    fn or(&mut self) -> Result<Expression, ExpressionError> {
        let mut terms = vec![self.and()?];
        while matches!(self.peek(), Some((_, Token::Or))) {
            self.at += 1;
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expression::Or(terms)
        })
    }

    fn and(&mut self) -> Result<Expression, ExpressionError> {
        let mut terms = vec![self.unary()?];
        while matches!(self.peek(), Some((_, Token::And))) {
            self.at += 1;
            terms.push(self.unary()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expression::And(terms)
        })
    }

    fn enter(&mut self, column: usize) -> Result<(), ExpressionError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(ExpressionError {
                column,
                message: format!(
                    "nested more than {MAX_NESTING} deep (parentheses and `!`); write it flatter"
                ),
            });
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Expression, ExpressionError> {
        if let Some((column, Token::Not)) = self.peek() {
            self.enter(column)?;
            self.at += 1;
            let e = Expression::Not(Box::new(self.unary()?));
            self.depth -= 1;
            return Ok(e);
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expression, ExpressionError> {
        let (column, token) = self
            .next()
            .ok_or_else(|| self.end_error("a field, `(` or `!`"))?;
        match token {
            Token::LParen => {
                self.enter(column)?;
                let e = self.or()?;
                self.depth -= 1;
                match self.next() {
                    Some((_, Token::RParen)) => Ok(e),
                    Some((c, t)) => Err(ExpressionError {
                        column: c,
                        message: format!("expected `)`, found {}", t.describe()),
                    }),
                    None => Err(self.end_error("`)`")),
                }
            }
            Token::Word(w) if w == "true" || w == "false" => Ok(Expression::Constant(w == "true")),
            Token::Word(w) => {
                let field = parse_field(&w).ok_or_else(|| ExpressionError {
                    column,
                    message: format!(
                        "unknown field `{w}`; fields are id, region, instance_type, criticality, critical and tags.NAME"
                    ),
                })?;
                self.comparison(column, field)
            }
            other => Err(ExpressionError {
                column,
                message: format!("expected a field, found {}", other.describe()),
            }),
        }
    }

    fn comparison(&mut self, column: usize, field: Field) -> Result<Expression, ExpressionError> {
        let field = FieldRef(field);
        match self.peek() {
            Some((_, Token::Eq | Token::Ne)) => {
                let (_, op) = self.next().ok_or_else(|| self.end_error("`==`"))?;
                let value = self.literal()?;
                Ok(Expression::Compare {
                    field,
                    equal: op == Token::Eq,
                    value,
                })
            }
            Some((_, Token::Word(w))) if w == "in" => {
                self.at += 1;
                Ok(Expression::In {
                    field,
                    negated: false,
                    values: self.list()?,
                })
            }
            Some((_, Token::Not)) if matches!(self.tokens.get(self.at + 1), Some((_, Token::Word(w))) if w == "in") =>
            {
                self.at += 2;
                Ok(Expression::In {
                    field,
                    negated: true,
                    values: self.list()?,
                })
            }
            _ if field.0 == Field::Critical => Ok(Expression::Compare {
                field,
                equal: true,
                value: "true".into(),
            }),
            _ => Err(ExpressionError {
                column,
                message: "a field must be compared: use ==, !=, in [..] or not in [..]".into(),
            }),
        }
    }

    fn literal(&mut self) -> Result<String, ExpressionError> {
        match self.next() {
            Some((_, Token::Str(s) | Token::Word(s))) => Ok(s),
            Some((c, t)) => Err(ExpressionError {
                column: c,
                message: format!("expected a value, found {}", t.describe()),
            }),
            None => Err(self.end_error("a value")),
        }
    }

    fn list(&mut self) -> Result<Vec<String>, ExpressionError> {
        match self.next() {
            Some((_, Token::LBracket)) => {}
            Some((c, t)) => {
                return Err(ExpressionError {
                    column: c,
                    message: format!("expected `[`, found {}", t.describe()),
                });
            }
            None => return Err(self.end_error("`[`")),
        }
        let mut values = vec![self.literal()?];
        loop {
            match self.next() {
                Some((_, Token::Comma)) => values.push(self.literal()?),
                Some((_, Token::RBracket)) => return Ok(values),
                Some((c, t)) => {
                    return Err(ExpressionError {
                        column: c,
                        message: format!("expected `,` or `]`, found {}", t.describe()),
                    });
                }
                None => return Err(self.end_error("`]`")),
            }
        }
    }
}

fn parse_field(word: &str) -> Option<Field> {
    match word {
        "id" => Some(Field::Id),
        "region" => Some(Field::Region),
        "instance_type" => Some(Field::InstanceType),
        "criticality" => Some(Field::Criticality),
        "critical" => Some(Field::Critical),
        w => w
            .strip_prefix("tags.")
            .filter(|n| !n.is_empty())
            .map(|n| Field::Tag(n.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bellwether_schemas::Criticality;
    use std::collections::BTreeMap;

    fn vm(region: &str, role: &str, critical: bool) -> VmRecord {
        VmRecord {
            id: format!("{region}-{role}"),
            tags: BTreeMap::from([("role".to_string(), role.to_string())]),
            instance_type: "m6i.large".into(),
            region: region.into(),
            criticality: if critical {
                Criticality::Critical
            } else {
                Criticality::Standard
            },
        }
    }

    #[test]
    fn evaluates_comparisons_sets_and_logic() {
        let e = Expression::parse(r#"tags.role == "web" && region != 'us-east-1'"#).unwrap();
        assert!(e.matches(&vm("eu-west-1", "web", false)));
        assert!(!e.matches(&vm("us-east-1", "web", false)));
        let e = Expression::parse(r#"critical or tags.role in ["db", "cache"]"#).unwrap();
        assert!(e.matches(&vm("x", "web", true)));
        assert!(e.matches(&vm("x", "db", false)));
        assert!(!e.matches(&vm("x", "web", false)));
        let e =
            Expression::parse(r#"!(tags.role not in [web]) && criticality == standard"#).unwrap();
        assert!(e.matches(&vm("x", "web", false)));
        assert!(!e.matches(&vm("x", "web", true)));
    }

    #[test]
    fn a_missing_tag_equals_nothing() {
        let e = Expression::parse(r#"tags.team == "payments""#).unwrap();
        assert!(!e.matches(&vm("x", "web", false)));
        let e = Expression::parse(r#"tags.team != "payments""#).unwrap();
        assert!(e.matches(&vm("x", "web", false)));
    }

    #[test]
    fn errors_say_where_and_what() {
        let e = Expression::parse(r#"region == "a" && colour == "b""#).unwrap_err();
        assert_eq!(e.column, 18);
        assert!(e.message.contains("unknown field `colour`"), "{e}");
        let e = Expression::parse("region ==").unwrap_err();
        assert!(e.message.contains("a value"), "{e}");
        let e = Expression::parse("region").unwrap_err();
        assert!(e.message.contains("must be compared"), "{e}");
        let e = Expression::parse("region == 'x").unwrap_err();
        assert!(e.message.contains("never closed"), "{e}");
    }

    #[test]
    fn deep_nesting_is_refused_and_long_chains_are_fine() {
        let bangs = format!("{}critical", "!".repeat(50_000));
        let e = Expression::parse(&bangs).unwrap_err();
        assert!(e.message.contains("nested more than 64"), "{e}");
        assert_eq!(e.column, MAX_NESTING + 1);
        let parens = format!("{}critical{}", "(".repeat(30_000), ")".repeat(30_000));
        assert!(Expression::parse(&parens).is_err());
        let ok = format!(
            "{}critical{}",
            "(".repeat(MAX_NESTING),
            ")".repeat(MAX_NESTING)
        );
        assert!(Expression::parse(&ok).is_ok());
        let chain = vec!["critical"; 50_000].join(" || ");
        let e = Expression::parse(&chain).unwrap();
        assert!(e.matches(&vm("eu", "web", true)));
    }
}
