//! OAL's tokens (docs/reference/oal.md §1): identifiers, integer and string literals, the
//! punctuation of a statement and the filter operators. Whitespace and comments (`//` and nestable
//! `/* */`) are [`Token::Trivia`], which the parser drops; every token keeps its byte span for
//! error locations.
//!
//! Two things logos does by recursion are kept out of it, since its generated code recursed
//! once per step and a long input overflowed the stack (logos issues #190, #384, #504; found by
//! `tests/fuzz_oal.rs`): a string literal is scanned by [`string`], not by a looping regex, and
//! trivia is a token rather than a `skip` (each skipped token was a nested call, so 200,000
//! comment lines in a row overflowed).

use logos::{Lexer, Logos};

/// One token.
#[derive(Logos, Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// Whitespace, a `//` comment or a `/* … */` one (nestable); the parser drops it.
    #[regex(r"[ \t\r\n\f]+")]
    #[regex(r"//[^\n]*")]
    #[token("/*", block_comment)]
    Trivia,
    /// A name: metric, scope, field, function, enum type or constant.
    #[regex(r"[A-Za-z_$][A-Za-z0-9_$]*", |lexer| lexer.slice().to_owned())]
    Ident(String),
    /// An integer literal (`_` allowed inside, `l`/`L` suffix).
    #[regex(r"-?[0-9][0-9_]*[lL]?", integer)]
    Int(i64),
    /// A double-quoted string with Java escapes, on one line.
    #[token("\"", string)]
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

/// Takes a block comment, nested ones included; an unclosed one is an error.
fn block_comment(lexer: &mut Lexer<'_, Token>) -> bool {
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
                    return true;
                }
            }
            _ => at += 1,
        }
    }
    lexer.bump(rest.len());
    false
}

fn integer(lexer: &mut Lexer<'_, Token>) -> Option<i64> {
    let text: String = lexer.slice().chars().filter(|c| *c != '_').collect();
    text.trim_end_matches(['l', 'L']).parse().ok()
}

/// Takes the rest of a string literal after its opening quote, unescaping `\"`, `\\`, `\n`,
/// `\t`, `\r`, `\b` and `\f` (any other escaped character stands for itself). A string that
/// does not close on its line is an error at its opening quote.
fn string(lexer: &mut Lexer<'_, Token>) -> Option<String> {
    let mut out = String::new();
    let mut chars = lexer.remainder().char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => {
                lexer.bump(at + 1);
                return Some(out);
            }
            '\n' => return None,
            '\\' => out.push(match chars.next()?.1 {
                '\n' => return None,
                'n' => '\n',
                't' => '\t',
                'r' => '\r',
                'b' => '\u{8}',
                'f' => '\u{c}',
                other => other,
            }),
            other => out.push(other),
        }
    }
    None
}

impl Token {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Token::Ident(name) => format!("`{name}`"),
            Token::Int(value) => format!("`{value}`"),
            Token::Str(text) => format!("\"{text}\""),
            Token::Trivia => "a comment".to_owned(),
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
            Token::Ident(_) | Token::Int(_) | Token::Str(_) | Token::Trivia => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<Result<Token, ()>> {
        Token::lexer(text).filter(|token| *token != Ok(Token::Trivia)).collect()
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
        assert_eq!(tokens(r#""\\" "é\t""#), [Ok(Token::Str("\\".to_owned())), Ok(Token::Str("é\t".to_owned()))]);
        assert_eq!(tokens("\"open\n\"")[0], Err(()), "a string closes on its line");
        assert_eq!(tokens("\"a\\\n\"")[0], Err(()), "a newline is not escaped");
    }

    /// Found by `tests/fuzz_oal.rs`: each of these overflowed the stack in logos' code.
    #[test]
    fn long_strings_and_long_runs_of_comments_lex_without_recursing() {
        let long = "é".repeat(200_000);
        assert_eq!(tokens(&format!("\"{long}\"")), [Ok(Token::Str(long.clone()))]);
        assert_eq!(tokens(&format!("\"{long}"))[0], Err(()));
        assert!(tokens(&"// c\n".repeat(200_000)).is_empty());
        assert!(tokens(&"/* c */".repeat(200_000)).is_empty());
    }
}
