//! The SQL guard: a query too complex to plan safely is refused before it
//! is parsed.
//!
//! The parser and planner walk expression trees recursively, so a query
//! of thousands of chained terms (`1+1+...`, `OR`s, `UNION ALL`s) would
//! exhaust any thread's stack. Counting the tokens that nest is cheap,
//! works on any input, and bounds the depth the planner can meet. No
//! dependency but sqlparser, so the fuzz target (`fuzz/`) runs this very
//! file.

use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer};

/// Operators (arithmetic, comparisons, AND/OR, set operations) one query
/// may hold.
pub const MAX_OPERATORS: usize = 500;

/// Refuses `sql` when it does not tokenize or holds more than
/// [`MAX_OPERATORS`] operators, parentheses and SELECTs; says why.
pub fn check(sql: &str) -> Result<(), String> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .map_err(|e| e.to_string())?;
    let operators = tokens.iter().filter(|t| nests(t)).count();
    if operators > MAX_OPERATORS {
        return Err(format!(
            "the query is too complex: {operators} operators, parentheses and SELECTs; at most {MAX_OPERATORS}"
        ));
    }
    Ok(())
}

/// True for a token that adds a level to the trees the planner walks.
fn nests(token: &Token) -> bool {
    match token {
        Token::Word(w) => matches!(
            w.keyword,
            Keyword::AND
                | Keyword::OR
                | Keyword::NOT
                | Keyword::UNION
                | Keyword::EXCEPT
                | Keyword::INTERSECT
                | Keyword::SELECT
                | Keyword::CASE
                | Keyword::WHEN
        ),
        Token::Plus
        | Token::Minus
        | Token::Mul
        | Token::Div
        | Token::Mod
        | Token::StringConcat
        | Token::Eq
        | Token::Neq
        | Token::Lt
        | Token::Gt
        | Token::LtEq
        | Token::GtEq
        | Token::LParen => true,
        _ => false,
    }
}
