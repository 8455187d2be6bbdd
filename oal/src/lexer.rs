//! OAL's tokens (oal.md §1): identifiers, integer and string literals, the punctuation of a
//! statement and the filter operators. Whitespace and comments (`//` and nestable `/* */`)
//! are skipped; every token keeps its byte span for error locations.

use logos::{Lexer, Logos};

/// One token.
#[derive(Logos, Debug, Clone, PartialEq, Eq)]
#[logos(skip r"[ \t\r\n\f]+")]
#[logos(skip r"//[^\n]*")]
pub enum Token {
    /// `/* … */`, nestable; skipped.
    #[token("/*", block_comment)]
    BlockComment,
    /// A name: metric, scope, field, function, enum type or constant.
    #[regex(r"[A-Za-z_$][A-Za-z0-9_$]*", |lexer| lexer.slice().to_owned())]
    Ident(String),
    /// An integer literal (`_` allowed inside, `l`/`L` suffix).
    #[regex(r"-?[0-9][0-9_]*[lL]?", integer)]
    Int(i64),
    /// A double-quoted string with Java escapes.
    #[regex(r#""([^"\\\n]|\\.)*""#, string)]
    Str(String),
    /// `=`.
    #[token("=")]
    Assign,
    /// `==`.
    #[token("==")]
    Eq,
    /// `!=`.
    #[token("!=")]
    Ne,
    /// `>=`.
    #[token(">=")]
    Ge,
    /// `<=`.
    #[token("<=")]
    Le,
    /// `>`.
    #[token(">")]
    Gt,
    /// `<`.
    #[token("<")]
    Lt,
    /// `->` in a cast.
    #[token("->")]
    Arrow,
    /// `(`.
    #[token("(")]
    LParen,
    /// `)`.
    #[token(")")]
    RParen,
    /// `[`.
    #[token("[")]
    LBracket,
    /// `]`.
    #[token("]")]
    RBracket,
    /// `.`.
    #[token(".")]
    Dot,
    /// `,`.
    #[token(",")]
    Comma,
    /// `;`.
    #[token(";")]
    Semicolon,
    /// `*`.
    #[token("*")]
    Star,
}

/// Skips a block comment, nested ones included; an unclosed one is an error.
fn block_comment(lexer: &mut Lexer<'_, Token>) -> logos::FilterResult<(), ()> {
    let rest = lexer.remainder().as_bytes();
    let mut depth = 1;
    let mut at = 0;
    while at + 1 < rest.len() {
        match &rest[at..at + 2] {
            b"/*" => {
                depth += 1;
                at += 2;
            }
            b"*/" => {
                depth -= 1;
                at += 2;
                if depth == 0 {
                    lexer.bump(at);
                    return logos::FilterResult::Skip;
                }
            }
            _ => at += 1,
        }
    }
    lexer.bump(rest.len());
    logos::FilterResult::Error(())
}

fn integer(lexer: &mut Lexer<'_, Token>) -> Option<i64> {
    let text: String = lexer.slice().chars().filter(|c| *c != '_').collect();
    text.trim_end_matches(['l', 'L']).parse().ok()
}

fn string(lexer: &mut Lexer<'_, Token>) -> Option<String> {
    let quoted = lexer.slice();
    let mut out = String::with_capacity(quoted.len());
    let mut chars = quoted[1..quoted.len() - 1].chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            'b' => '\u{8}',
            'f' => '\u{c}',
            other => other,
        });
    }
    Some(out)
}

impl Token {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Token::Ident(name) => format!("`{name}`"),
            Token::Int(value) => format!("`{value}`"),
            Token::Str(text) => format!("\"{text}\""),
            Token::BlockComment => "a comment".to_owned(),
            other => format!("`{}`", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            Token::Assign => "=",
            Token::Eq => "==",
            Token::Ne => "!=",
            Token::Ge => ">=",
            Token::Le => "<=",
            Token::Gt => ">",
            Token::Lt => "<",
            Token::Arrow => "->",
            Token::LParen => "(",
            Token::RParen => ")",
            Token::LBracket => "[",
            Token::RBracket => "]",
            Token::Dot => ".",
            Token::Comma => ",",
            Token::Semicolon => ";",
            Token::Star => "*",
            Token::Ident(_) | Token::Int(_) | Token::Str(_) | Token::BlockComment => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<Result<Token, ()>> {
        Token::lexer(text).collect()
    }

    #[test]
    fn statements_tokenize_without_comments() {
        let text = "// a metric\nx = /* outer /* inner */ still */ from(Service.latency).longAvg();";
        let names: Vec<Token> = tokens(text).into_iter().map(|token| token.expect("valid")).collect();
        assert_eq!(names[0], Token::Ident("x".to_owned()));
        assert_eq!(names[1], Token::Assign);
        assert_eq!(names[2], Token::Ident("from".to_owned()));
        assert_eq!(names.len(), 13);
    }

    #[test]
    fn literals_read_as_java_writes_them() {
        assert_eq!(tokens("1_000L"), [Ok(Token::Int(1000))]);
        assert_eq!(tokens(r#""a\"b\n""#), [Ok(Token::Str("a\"b\n".to_owned()))]);
        assert_eq!(
            tokens("(str->long)"),
            [
                Ok(Token::LParen),
                Ok(Token::Ident("str".to_owned())),
                Ok(Token::Arrow),
                Ok(Token::Ident("long".to_owned())),
                Ok(Token::RParen)
            ]
        );
        assert_eq!(tokens("/* never closed"), [Err(())]);
    }
}
