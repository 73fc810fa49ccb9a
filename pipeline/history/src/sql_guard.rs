//! The SQL guard: a query too complex to plan safely is refused before it
//! is parsed.
//!
//! The parser and planner walk expression trees recursively, so a query
//! of thousands of chained terms (`1+1+...`, `OR`s, `UNION ALL`s) would
//! exhaust any thread's stack. Counting the tokens that nest is cheap,
//! works on any input, and bounds the depth the planner can meet. The
//! fuzz target found more: the parser backtracks exponentially on a
//! period before a parenthesis, on deeply nested calls and on long dotted
//! names inside parentheses, so those are refused too. The list is what
//! fuzzing found, not a proof: a query the guard lets through and the
//! parser spends long on still gets its timeout answer on time, and holds
//! its `sql.max_concurrent` place until the parser lets go. No
//! dependency but sqlparser, so the fuzz target (`fuzz/`) runs this very
//! file.

use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::tokenizer::{Token, Tokenizer};

/// Operators (arithmetic, comparisons, AND/OR, set operations) one query
/// may hold.
pub const MAX_OPERATORS: usize = 500;

/// How deep parentheses, brackets and braces may nest. The parser backtracks on some nested
/// forms, its work growing four to eight times a level: the fuzz target's
/// `f(case(case(case( c*o, ...` took 4.4 s at 24 levels, 0.14 s at 16.
pub const MAX_NESTING: usize = 16;

/// Periods one dotted name may hold (`a.b.c.d.e.f.g.h.i`): the parser
/// backtracks on each part of a long one inside parentheses, its work
/// doubling a part (`(i.i.i.` with 20 parts took 2 s, with 8 none to speak of).
pub const MAX_NAME_PERIODS: usize = 8;

/// Refuses `sql` when it does not tokenize, nests parentheses deeper than
/// [`MAX_NESTING`], puts a period before a parenthesis, names something with
/// more than [`MAX_NAME_PERIODS`] periods, or holds more than
/// [`MAX_OPERATORS`] operators, parentheses and SELECTs; says why.
pub fn check(sql: &str) -> Result<(), String> {
    let tokens = Tokenizer::new(&GenericDialect {}, sql)
        .tokenize()
        .map_err(|e| e.to_string())?;
    let mut significant = tokens.iter().filter(|t| !matches!(t, Token::Whitespace(_)));
    let mut before = significant.next();
    let mut depth = usize::from(matches!(
        before,
        Some(Token::LParen | Token::LBracket | Token::LBrace)
    ));
    let mut periods = 0;
    for token in significant {
        match token {
            Token::Period => periods += 1,
            Token::Word(_) => {}
            _ => periods = 0,
        }
        if periods > MAX_NAME_PERIODS {
            return Err(format!(
                "a name of more than {} dotted parts; catalog.schema.table.column has 4",
                MAX_NAME_PERIODS + 1
            ));
        }
        match token {
            Token::LParen | Token::LBracket | Token::LBrace => depth += 1,
            Token::RParen | Token::RBracket | Token::RBrace => depth = depth.saturating_sub(1),
            _ => {}
        }
        if depth > MAX_NESTING {
            return Err(format!(
                "parentheses nest more than {MAX_NESTING} deep; write the query flatter (e.g. with WITH)"
            ));
        }
        if matches!(before, Some(Token::Period)) && matches!(token, Token::LParen) {
            // Not SQL, and what makes the parser backtrack exponentially:
            // 70 bytes of `(a.b.c.d.(a.b.c.d.(...` kept it busy for minutes.
            return Err("`.(` (a period before a parenthesis) is not SQL this server plans".into());
        }
        before = Some(token);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chains_past_the_limit_and_a_period_before_a_parenthesis_are_refused() {
        assert!(check("SELECT vm_id, count(*) FROM scores WHERE (a > 1) GROUP BY vm_id").is_ok());
        assert!(check("SELECT s.metric FROM samples s").is_ok());
        assert!(check("SELECT 1.5 * (2)").is_ok());
        let chain = format!("SELECT {}", vec!["1"; 600].join("+"));
        assert!(check(&chain).unwrap_err().contains("at most 500"));
        // Found by the fuzz target: 88 bytes that took the parser 36 s.
        let found = "SELECT ((CC_.i._.i._.(CC_.i.C_.i._.i._.anC_.i.C_.i._.i._.(CC_.i.C_.i._.i._:.ana\n.ononi.~";
        assert!(check(found).unwrap_err().contains("`.(`"));
        assert!(check("SELECT a . (b)").unwrap_err().contains("`.(`"));
        let deep = |n| format!("SELECT {}1{}", "(".repeat(n), ")".repeat(n));
        assert!(check(&deep(MAX_NESTING)).is_ok());
        assert!(check(&deep(MAX_NESTING + 1)).unwrap_err().contains("nest"));
        // Found by the fuzz target too: 372 bytes of nested CASEs, 11 s.
        let cases = format!("SELECT {}", "f(case(case(case( c*o,".repeat(6));
        assert!(check(&cases).unwrap_err().contains("nest"));
        // And a long dotted name inside parentheses: 63 bytes, 13 s.
        let dotted = "SELECT ((CC_.ii._.C_.i._.ano.i.ano.i.C_.i._.C_.i._.ano.i.ano.i.";
        assert!(check(dotted).unwrap_err().contains("dotted parts"));
        assert!(check("SELECT cat.schema.samples.value FROM cat.schema.samples").is_ok());
    }
}
