//! Any text as a `/api/sql` query (unauthenticated when the server is on
//! loopback): the guard must never panic, and a query it lets through
//! must parse (or fail to) without exhausting the stack. Runs the guard's
//! own source file, with the parser datafusion plans with.
#![no_main]

#[path = "../../pipeline/history/src/sql_guard.rs"]
mod sql_guard;

use libfuzzer_sys::fuzz_target;
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else {
        return;
    };
    if sql_guard::check(sql).is_ok() {
        let _ = Parser::parse_sql(&GenericDialect {}, sql);
    }
});
