//! The parser: tokens into a [`Script`], by descent over OAL's small grammar. Every error names
//! its file, line and column and says what was expected and what was found.
//!
//! OAL has no nesting — no parenthesised conditions, no lists of lists, no calls within calls —
//! so the parser never recurses: every repetition (statements, filters, arguments, list values,
//! attribute paths) is a loop over the tokens. Input nested or repeated to any depth ends in an
//! error or a script, never a stack overflow; the tests below hold it to that.

use std::fmt;
use std::ops::Range;

use logos::Logos;

use crate::ast::{
    Argument, Attribute, Cast, Condition, Literal, Location, MetricStatement, Operand, Operator, Script, Statement,
};
use crate::lexer::Token;

/// A script that cannot be read, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OalError {
    /// The file (as given to [`parse`]).
    pub file: String,
    /// Where.
    pub at: Location,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for OalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.at.line, self.at.column, self.message)
    }
}

impl std::error::Error for OalError {}

/// Parses `text`, read from `file`.
pub fn parse(file: &str, text: &str) -> Result<Script, OalError> {
    let lines = LineIndex::new(text);
    let mut tokens = Vec::new();
    let mut lexer = Token::lexer(text);
    while let Some(token) = lexer.next() {
        let span = lexer.span();
        match token {
            Ok(Token::Trivia) => {}
            Ok(token) => tokens.push((token, span)),
            Err(()) => {
                let found = &text[span.clone()];
                let message = if found.starts_with("/*") {
                    "a comment that is never closed (`*/` missing)".to_owned()
                } else {
                    format!("unexpected `{}`", found.chars().next().unwrap_or(' '))
                };
                return Err(OalError { file: file.to_owned(), at: lines.locate(text, span.start), message });
            }
        }
    }
    let mut parser = Parser { file, text, lines, tokens, next: 0 };
    let mut statements = Vec::new();
    while parser.peek().is_some() {
        statements.push(parser.statement()?);
    }
    Ok(Script { statements })
}

/// Byte offsets of line starts, to turn a byte offset into a line and column.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(at, _)| at + 1));
        Self { starts }
    }

    fn locate(&self, text: &str, offset: usize) -> Location {
        let line = self.starts.partition_point(|start| *start <= offset);
        let start = self.starts[line - 1];
        Location { line, column: text.get(start..offset).map_or(offset - start, |part| part.chars().count()) + 1 }
    }
}

struct Parser<'a> {
    file: &'a str,
    text: &'a str,
    lines: LineIndex,
    tokens: Vec<(Token, Range<usize>)>,
    next: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.next).map(|(token, _)| token)
    }

    fn peek_at(&self, ahead: usize) -> Option<&Token> {
        self.tokens.get(self.next + ahead).map(|(token, _)| token)
    }

    /// Where the next token starts, or the end of the text.
    fn here(&self) -> Location {
        let offset = self.tokens.get(self.next).map_or(self.text.len(), |(_, span)| span.start);
        self.lines.locate(self.text, offset)
    }

    fn error(&self, expected: &str) -> OalError {
        let found = self.peek().map_or_else(|| "the end of the file".to_owned(), Token::describe);
        OalError { file: self.file.to_owned(), at: self.here(), message: format!("expected {expected}, found {found}") }
    }

    fn error_at(&self, at: Location, message: String) -> OalError {
        OalError { file: self.file.to_owned(), at, message }
    }

    fn eat(&mut self, token: &Token) -> bool {
        if self.peek() == Some(token) {
            self.next += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, token: &Token, expected: &str) -> Result<(), OalError> {
        if self.eat(token) { Ok(()) } else { Err(self.error(expected)) }
    }

    fn ident(&mut self, expected: &str) -> Result<String, OalError> {
        match self.peek() {
            Some(Token::Ident(name)) => {
                let name = name.clone();
                self.next += 1;
                Ok(name)
            }
            _ => Err(self.error(expected)),
        }
    }

    fn string(&mut self, expected: &str) -> Result<String, OalError> {
        match self.peek() {
            Some(Token::Str(text)) => {
                let text = text.clone();
                self.next += 1;
                Ok(text)
            }
            _ => Err(self.error(expected)),
        }
    }

    fn is_ident(&self, ahead: usize, name: &str) -> bool {
        matches!(self.peek_at(ahead), Some(Token::Ident(found)) if found == name)
    }

    fn keyword(&mut self, name: &str) -> Result<(), OalError> {
        if self.is_ident(0, name) {
            self.next += 1;
            Ok(())
        } else {
            Err(self.error(&format!("`{name}`")))
        }
    }

    fn end_of_statement(&mut self) -> Result<(), OalError> {
        if self.eat(&Token::Semicolon) || self.peek().is_none() {
            Ok(())
        } else {
            Err(self.error("`;` at the end of the statement"))
        }
    }

    fn statement(&mut self) -> Result<Statement, OalError> {
        let at = self.here();
        if self.is_ident(0, "disable") && self.peek_at(1) == Some(&Token::LParen) {
            self.next += 2;
            let stream = self.ident("the name of the stream to disable")?;
            self.expect(&Token::RParen, "`)` after the stream name")?;
            self.end_of_statement()?;
            return Ok(Statement::Disable { stream, at });
        }
        let name = self.ident("a metric name or `disable(...)`")?;
        self.expect(&Token::Assign, "`=` after the metric name")?;
        self.keyword("from")?;
        self.expect(&Token::LParen, "`(` after `from`")?;
        let source_at = self.here();
        let cast = self.cast()?;
        let scope = self.ident("a scope, e.g. `Service`")?;
        self.expect(&Token::Dot, "`.` and an attribute after the scope")?;
        let attribute = if self.eat(&Token::Star) { Attribute::All } else { self.attribute()? };
        let source = Operand { cast, attribute, at: source_at };
        self.expect(&Token::RParen, "`)` after the source")?;

        let mut filters = Vec::new();
        loop {
            self.expect(&Token::Dot, "`.filter(...)` or `.function()` after the source")?;
            if self.is_ident(0, "filter") && self.peek_at(1) == Some(&Token::LParen) {
                self.next += 2;
                let operand = self.operand()?;
                filters.push(self.condition(operand)?);
                self.expect(&Token::RParen, "`)` after the filter condition")?;
            } else {
                break;
            }
        }
        let function_at = self.here();
        let function = self.ident("an aggregation function, e.g. `longAvg()`")?;
        self.expect(&Token::LParen, &format!("`(` after `{function}`"))?;
        let mut args = Vec::new();
        if !self.eat(&Token::RParen) {
            loop {
                args.push(self.argument()?);
                if self.eat(&Token::RParen) {
                    break;
                }
                self.expect(&Token::Comma, "`,` or `)` in the function's arguments")?;
            }
        }
        let mut decorator = None;
        if self.peek() == Some(&Token::Dot) && self.is_ident(1, "decorator") {
            self.next += 2;
            self.expect(&Token::LParen, "`(` after `decorator`")?;
            decorator = Some(self.string("the decorator's name in quotes")?);
            self.expect(&Token::RParen, "`)` after the decorator's name")?;
        }
        self.end_of_statement()?;
        Ok(Statement::Metric(Box::new(MetricStatement {
            name,
            scope,
            source,
            filters,
            function,
            args,
            decorator,
            at,
            function_at,
        })))
    }

    /// `(str->long)`, `(long)`, `(str->int)`, `(int)`, or nothing.
    fn cast(&mut self) -> Result<Option<Cast>, OalError> {
        if self.peek() != Some(&Token::LParen) {
            return Ok(None);
        }
        let at = self.here();
        self.next += 1;
        if self.is_ident(0, "str") && self.peek_at(1) == Some(&Token::Arrow) {
            self.next += 2;
        }
        let target = self.ident("`long` or `int` in a cast")?;
        let cast = match target.as_str() {
            "long" => Cast::Long,
            "int" => Cast::Int,
            other => return Err(self.error_at(at, format!("unknown cast to `{other}`; OAL casts to `long` or `int`"))),
        };
        self.expect(&Token::RParen, "`)` after the cast")?;
        Ok(Some(cast))
    }

    /// `name`, `a.b.c`, `tag["key"]`.
    fn attribute(&mut self) -> Result<Attribute, OalError> {
        let mut path = vec![self.ident("an attribute name")?];
        while self.peek() == Some(&Token::Dot) && matches!(self.peek_at(1), Some(Token::Ident(_))) {
            self.next += 1;
            path.push(self.ident("an attribute name")?);
        }
        let mut key = None;
        if self.eat(&Token::LBracket) {
            key = Some(self.string("a key in quotes, e.g. `tag[\"http.method\"]`")?);
            self.expect(&Token::RBracket, "`]` after the key")?;
        }
        Ok(Attribute::Path { path, key })
    }

    fn operand(&mut self) -> Result<Operand, OalError> {
        let at = self.here();
        let cast = self.cast()?;
        Ok(Operand { cast, attribute: self.attribute()?, at })
    }

    fn operator(&mut self) -> Option<Operator> {
        let operator = match self.peek()? {
            Token::Eq => Operator::Eq,
            Token::Ne => Operator::Ne,
            Token::Gt => Operator::Gt,
            Token::Lt => Operator::Lt,
            Token::Ge => Operator::Ge,
            Token::Le => Operator::Le,
            Token::Ident(word) if word == "like" => Operator::Like,
            Token::Ident(word) if word == "in" => Operator::In,
            Token::Ident(word) if word == "contain" => Operator::Contain,
            Token::Ident(word) if word == "not" && self.is_ident(1, "contain") => {
                self.next += 1;
                Operator::NotContain
            }
            _ => return None,
        };
        self.next += 1;
        Some(operator)
    }

    fn condition(&mut self, left: Operand) -> Result<Condition, OalError> {
        let operator =
            self.operator().ok_or_else(|| self.error("a comparison (`==`, `!=`, `>`, `like`, `in`, `contain`, …)"))?;
        let right_at = self.here();
        let right = if operator == Operator::In { self.list()? } else { self.literal()? };
        Ok(Condition { left, operator, right, right_at })
    }

    fn list(&mut self) -> Result<Literal, OalError> {
        self.expect(&Token::LBracket, "`[` and the values of `in`")?;
        let mut values = Vec::new();
        loop {
            values.push(self.literal()?);
            if self.eat(&Token::RBracket) {
                return Ok(Literal::List(values));
            }
            self.expect(&Token::Comma, "`,` or `]` in the list")?;
        }
    }

    fn literal(&mut self) -> Result<Literal, OalError> {
        let literal = match self.peek() {
            Some(Token::Int(value)) => Literal::Int(*value),
            Some(Token::Str(text)) => Literal::Str(text.clone()),
            Some(Token::Ident(word)) if word == "true" => Literal::Bool(true),
            Some(Token::Ident(word)) if word == "false" => Literal::Bool(false),
            Some(Token::Ident(word)) if word == "null" => Literal::Null,
            Some(Token::Ident(ty)) if self.peek_at(1) == Some(&Token::Dot) => {
                let ty = ty.clone();
                self.next += 2;
                let value = self.ident(&format!("a constant of `{ty}`"))?;
                return Ok(Literal::Enum { ty, value });
            }
            _ => return Err(self.error("a value: a number, a string, `true`, `false`, `null` or `Enum.VALUE`")),
        };
        self.next += 1;
        Ok(literal)
    }

    fn argument(&mut self) -> Result<Argument, OalError> {
        let literal_first = match self.peek() {
            Some(Token::Int(_) | Token::Str(_)) => true,
            Some(Token::Ident(word)) => matches!(word.as_str(), "true" | "false" | "null"),
            _ => false,
        };
        if literal_first {
            return self.literal().map(Argument::Literal);
        }
        let operand = self.operand()?;
        if matches!(self.peek(), Some(Token::Comma | Token::RParen)) {
            return Ok(Argument::Attribute(operand));
        }
        self.condition(operand).map(Argument::Condition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(text: &str) -> MetricStatement {
        match parse("t.oal", text).expect("parses").statements.remove(0) {
            Statement::Metric(metric) => *metric,
            other => panic!("not a metric: {other:?}"),
        }
    }

    fn path(names: &[&str], key: Option<&str>) -> Attribute {
        Attribute::Path { path: names.iter().map(|name| (*name).to_owned()).collect(), key: key.map(str::to_owned) }
    }

    fn error(text: &str) -> String {
        parse("core.oal", text).expect_err("does not parse").to_string()
    }

    #[test]
    fn every_statement_shape_of_core_oal_parses() {
        let resp = metric("service_resp_time = from(Service.latency).longAvg().decorator(\"ServiceDecorator\");");
        assert_eq!(
            (resp.name.as_str(), resp.scope.as_str(), resp.function.as_str()),
            ("service_resp_time", "Service", "longAvg")
        );
        assert_eq!(resp.source.attribute, path(&["latency"], None));
        assert_eq!(resp.decorator.as_deref(), Some("ServiceDecorator"));

        let sla = metric("service_sla = from(Service.*).percent(status == true);");
        assert_eq!(sla.source.attribute, Attribute::All);
        let Argument::Condition(condition) = &sla.args[0] else { panic!("a condition argument") };
        assert_eq!((condition.operator, &condition.right), (Operator::Eq, &Literal::Bool(true)));

        let mq = metric(
            "service_mq_consume_latency = from((str->long)Service.tag[\"transmission.latency\"])\n  .filter(type == RequestType.MQ).filter(tag[\"transmission.latency\"] != null).longAvg();",
        );
        assert_eq!(mq.source.cast, Some(Cast::Long));
        assert_eq!(mq.source.attribute, path(&["tag"], Some("transmission.latency")));
        assert_eq!(mq.filters.len(), 2);
        assert_eq!(mq.filters[0].right, Literal::Enum { ty: "RequestType".to_owned(), value: "MQ".to_owned() });
        assert_eq!((mq.filters[1].operator, &mq.filters[1].right), (Operator::Ne, &Literal::Null));

        let apdex = metric("service_apdex = from(Service.latency).apdex(name, status);");
        assert_eq!(
            apdex.args,
            [
                Argument::Attribute(Operand {
                    cast: None,
                    attribute: path(&["name"], None),
                    at: Location { line: 1, column: 45 }
                }),
                Argument::Attribute(Operand {
                    cast: None,
                    attribute: path(&["status"], None),
                    at: Location { line: 1, column: 51 }
                }),
            ]
        );
        assert_eq!(metric("p = from(Service.latency).percentile2(10);").args, [Argument::Literal(Literal::Int(10))]);
        let many = metric(
            "x = from(Endpoint.*).filter(name in [\"/a\", \"/b\"]).filter(tags not contain \"k=v\").filter(name like \"%/api%\").filter((int)tag[\"n\"] >= 3).count();",
        );
        let operators: Vec<Operator> = many.filters.iter().map(|filter| filter.operator).collect();
        assert_eq!(operators, [Operator::In, Operator::NotContain, Operator::Like, Operator::Ge]);
        assert_eq!(many.filters[3].left.cast, Some(Cast::Int));
        let side = metric("x = from(ServiceMesh.sideCar.internalErrorCode).count()");
        assert_eq!(side.source.attribute, path(&["sideCar", "internalErrorCode"], None));
    }

    #[test]
    fn disable_statements_and_comments() {
        let script = parse("disable.oal", "// nothing\n/* disable(segment); */\ndisable(top_n_database_statement);\n")
            .expect("parses");
        assert_eq!(
            script.statements,
            [Statement::Disable { stream: "top_n_database_statement".to_owned(), at: Location { line: 3, column: 1 } }]
        );
    }

    #[test]
    fn errors_point_at_what_is_wrong() {
        assert_eq!(
            error("a = from(Service.latency).longAvg()\nb = from(Service.*).cpm();"),
            "core.oal:2:1: expected `;` at the end of the statement, found `b`"
        );
        assert_eq!(error("a = form(Service.latency).longAvg();"), "core.oal:1:5: expected `from`, found `form`");
        assert_eq!(
            error("a = from(Service).cpm();"),
            "core.oal:1:17: expected `.` and an attribute after the scope, found `)`"
        );
        assert_eq!(
            error("a = from(Service.*).filter(status = true).cpm();"),
            "core.oal:1:35: expected a comparison (`==`, `!=`, `>`, `like`, `in`, `contain`, …), found `=`"
        );
        assert_eq!(
            error("a = from((str->float)Service.x).sum();"),
            "core.oal:1:10: unknown cast to `float`; OAL casts to `long` or `int`"
        );
        assert_eq!(
            error("a = from(Service.*).filter(name in \"x\").cpm();"),
            "core.oal:1:36: expected `[` and the values of `in`, found \"x\""
        );
        assert_eq!(error("a = from(Service.*).cpm(;"), "core.oal:1:25: expected an attribute name, found `;`");
        assert_eq!(
            error("a = from(Service.*)"),
            "core.oal:1:20: expected `.filter(...)` or `.function()` after the source, found the end of the file"
        );
        assert_eq!(error("/* open\na = 1"), "core.oal:1:1: a comment that is never closed (`*/` missing)");
        assert_eq!(error("a = from(Service.*).cpm() # x"), "core.oal:1:27: unexpected `#`");
        // The first `é` is the 16th character: columns count characters, not bytes.
        assert_eq!(error("a = from(Servicé.*).cpm(x == é);"), "core.oal:1:16: unexpected `é`");
    }

    #[test]
    fn input_nested_or_repeated_20000_times_is_an_error_or_a_script_never_a_crash() {
        let deep = 20_000;
        // Nesting the grammar has no place for is refused at its first extra level.
        let casts = format!("a = from({}Service.latency{}).longAvg();", "(".repeat(deep), ")".repeat(deep));
        assert_eq!(error(&casts), "core.oal:1:11: expected `long` or `int` in a cast, found `(`");
        let lists = format!("a = from(Service.*).filter(name in {}\"x\"{}).cpm();", "[".repeat(deep), "]".repeat(deep));
        assert_eq!(
            error(&lists),
            "core.oal:1:37: expected a value: a number, a string, `true`, `false`, `null` or `Enum.VALUE`, found `[`"
        );
        let arguments = format!("a = from(Service.latency).percentile2({}10{});", "(".repeat(deep), ")".repeat(deep));
        assert_eq!(error(&arguments), "core.oal:1:40: expected `long` or `int` in a cast, found `(`");
        let keys = format!("a = from(Service.tag{}).cpm();", "[\"k\"]".repeat(deep));
        assert_eq!(error(&keys), "core.oal:1:26: expected `)` after the source, found `[`");
        // Repetition the grammar allows is a loop, however long.
        let filters = format!("a = from(Service.*){}.cpm();", ".filter(name == \"x\")".repeat(deep));
        assert_eq!(metric(&filters).filters.len(), deep);
        let path = format!("a = from(Service.{}).cpm();", vec!["x"; deep].join("."));
        assert!(matches!(metric(&path).source.attribute, Attribute::Path { ref path, .. } if path.len() == deep));
        let values = format!("a = from(Service.*).filter(name in [{}]).cpm();", vec!["1"; deep].join(","));
        assert!(matches!(&metric(&values).filters[0].right, Literal::List(values) if values.len() == deep));
        let statements = "a = from(Service.*).cpm();\n".repeat(deep);
        assert_eq!(parse("core.oal", &statements).expect("parses").statements.len(), deep);
    }
}
