//! Lexer and Pratt parser for FHIRPath expressions.

use crate::ast::{Ast, BinOp, Literal, TypeSpec};
use crate::error::ParseError;
use crate::functions;

/// Deeper nesting than this is refused rather than risking the stack.
const MAX_DEPTH: usize = 128;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// An identifier; `true` when it was backtick-delimited (never a keyword).
    Ident(String, bool),
    Str(String),
    Number(String),
    Date(String),
    DateTime(String),
    Time(String),
    /// `%name`
    Env(String),
    /// `$this`, `$index`, `$total`
    Dollar(String),
    Sym(&'static str),
    End,
}

struct Lexer<'s> {
    src: &'s str,
    pos: usize,
}

const SYMBOLS: [&str; 22] = [
    "<=", ">=", "!=", "!~", "(", ")", "[", "]", "{", "}", ".", ",", "+", "-", "*", "/", "&", "|",
    "<", ">", "=", "~",
];

impl<'s> Lexer<'s> {
    fn peek_char(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn skip_trivia(&mut self) -> Result<(), ParseError> {
        loop {
            let rest = &self.src[self.pos..];
            if let Some(c) = rest.chars().next().filter(|c| c.is_whitespace()) {
                self.pos += c.len_utf8();
            } else if rest.starts_with("//") {
                self.pos += rest.find('\n').unwrap_or(rest.len());
            } else if let Some(body) = rest.strip_prefix("/*") {
                match body.find("*/") {
                    Some(i) => self.pos += i + 4,
                    None => return Err(ParseError::new(self.pos, "unterminated comment")),
                }
            } else {
                return Ok(());
            }
        }
    }

    fn next(&mut self) -> Result<(usize, Tok), ParseError> {
        self.skip_trivia()?;
        let start = self.pos;
        let Some(c) = self.peek_char() else {
            return Ok((start, Tok::End));
        };
        let tok = if c.is_ascii_alphabetic() || c == '_' {
            Tok::Ident(self.word().to_owned(), false)
        } else if c == '`' {
            Tok::Ident(self.quoted('`')?, true)
        } else if c == '\'' {
            Tok::Str(self.quoted('\'')?)
        } else if c.is_ascii_digit() {
            self.number()
        } else if c == '@' {
            self.pos += 1;
            self.temporal()?
        } else if c == '%' {
            self.pos += 1;
            match self.peek_char() {
                Some('`') => Tok::Env(self.quoted('`')?),
                Some('\'') => Tok::Env(self.quoted('\'')?),
                Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                    Tok::Env(self.word_with_dash().to_owned())
                }
                _ => return Err(ParseError::new(start, "expected a name after %")),
            }
        } else if c == '$' {
            self.pos += 1;
            let w = self.word();
            match w {
                "this" | "index" | "total" => Tok::Dollar(w.to_owned()),
                _ => return Err(ParseError::new(start, format!("unknown variable ${w}"))),
            }
        } else if let Some(sym) = SYMBOLS
            .iter()
            .find(|s| self.src[self.pos..].starts_with(**s))
        {
            self.pos += sym.len();
            Tok::Sym(sym)
        } else {
            return Err(ParseError::new(
                start,
                format!("unexpected character {c:?}"),
            ));
        };
        Ok((start, tok))
    }

    fn word(&mut self) -> &'s str {
        let start = self.pos;
        let rest = &self.src[start..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        self.pos += len;
        &self.src[start..start + len]
    }

    /// `%vs-name` style variables may contain dashes.
    fn word_with_dash(&mut self) -> &'s str {
        let start = self.pos;
        let rest = &self.src[start..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(rest.len());
        self.pos += len;
        &self.src[start..start + len]
    }

    fn quoted(&mut self, quote: char) -> Result<String, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        let mut chars = self.src[self.pos..].char_indices();
        while let Some((i, c)) = chars.next() {
            if c == quote {
                self.pos += i + 1;
                return Ok(out);
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let Some((_, e)) = chars.next() else { break };
            match e {
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                'f' => out.push('\u{c}'),
                'u' => {
                    let hex: String = chars.by_ref().take(4).map(|(_, c)| c).collect();
                    let ch = u32::from_str_radix(&hex, 16)
                        .ok()
                        .filter(|_| hex.len() == 4)
                        .and_then(char::from_u32)
                        .ok_or_else(|| {
                            ParseError::new(self.pos + i, format!("invalid escape \\u{hex}"))
                        })?;
                    out.push(ch);
                }
                other => out.push(other),
            }
        }
        Err(ParseError::new(start, "unterminated quoted text"))
    }

    fn number(&mut self) -> Tok {
        let start = self.pos;
        let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        self.pos += digits(&self.src[self.pos..]);
        let rest = &self.src[self.pos..];
        if rest.starts_with('.') && rest[1..].starts_with(|c: char| c.is_ascii_digit()) {
            self.pos += 1;
            self.pos += digits(&self.src[self.pos..]);
        }
        Tok::Number(self.src[start..self.pos].to_owned())
    }

    /// After `@`: a date, a date-time or (`@T…`) a time, checked for shape.
    fn temporal(&mut self) -> Result<Tok, ParseError> {
        let start = self.pos;
        let bytes = self.src.as_bytes();
        let take_digits = |pos: &mut usize, n: usize| -> bool {
            if bytes.len() >= *pos + n && bytes[*pos..*pos + n].iter().all(u8::is_ascii_digit) {
                *pos += n;
                true
            } else {
                false
            }
        };
        let mut p = self.pos;
        let is_time = bytes.get(p) == Some(&b'T');
        let mut has_t = false;
        if !is_time {
            if !take_digits(&mut p, 4) {
                return Err(ParseError::new(start - 1, "expected a date after @"));
            }
            for _ in 0..2 {
                if bytes.get(p) == Some(&b'-') && {
                    let mut q = p + 1;
                    take_digits(&mut q, 2)
                } {
                    p += 3;
                } else {
                    break;
                }
            }
        }
        if bytes.get(p) == Some(&b'T') {
            has_t = true;
            p += 1;
            if take_digits(&mut p, 2) {
                for _ in 0..2 {
                    if bytes.get(p) == Some(&b':') && {
                        let mut q = p + 1;
                        take_digits(&mut q, 2)
                    } {
                        p += 3;
                    } else {
                        break;
                    }
                }
                if bytes.get(p) == Some(&b'.') && {
                    let mut q = p + 1;
                    take_digits(&mut q, 1)
                } {
                    p += 1;
                    while bytes.get(p).is_some_and(u8::is_ascii_digit) {
                        p += 1;
                    }
                }
            } else if is_time {
                return Err(ParseError::new(start - 1, "expected a time after @T"));
            }
            if !is_time {
                if bytes.get(p) == Some(&b'Z') {
                    p += 1;
                } else if matches!(bytes.get(p), Some(b'+' | b'-')) && {
                    let mut q = p + 1;
                    take_digits(&mut q, 2)
                        && bytes.get(q) == Some(&b':')
                        && take_digits(&mut { q + 1 }, 2)
                } {
                    p += 6;
                }
            }
        }
        self.pos = p;
        let text = self.src[start..p].to_owned();
        Ok(if is_time {
            Tok::Time(text[1..].to_owned())
        } else if has_t {
            Tok::DateTime(text)
        } else {
            Tok::Date(text)
        })
    }
}

/// Parses an expression into its tree.
pub(crate) fn parse(src: &str) -> Result<Ast, ParseError> {
    let mut p = Parser {
        lexer: Lexer { src, pos: 0 },
        tok: Tok::End,
        tok_pos: 0,
        depth: 0,
    };
    p.advance()?;
    let ast = p.expr(0)?;
    if p.tok != Tok::End {
        return Err(ParseError::new(
            p.tok_pos,
            format!("unexpected {} after the expression", describe(&p.tok)),
        ));
    }
    Ok(ast)
}

struct Parser<'s> {
    lexer: Lexer<'s>,
    tok: Tok,
    tok_pos: usize,
    depth: usize,
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Ident(s, _) => format!("identifier {s:?}"),
        Tok::Str(s) => format!("string '{s}'"),
        Tok::Number(s) | Tok::Date(s) | Tok::DateTime(s) | Tok::Time(s) => format!("literal {s}"),
        Tok::Env(s) => format!("%{s}"),
        Tok::Dollar(s) => format!("${s}"),
        Tok::Sym(s) => format!("'{s}'"),
        Tok::End => "end of expression".to_owned(),
    }
}

const CALENDAR_UNITS: [&str; 16] = [
    "year",
    "years",
    "month",
    "months",
    "week",
    "weeks",
    "day",
    "days",
    "hour",
    "hours",
    "minute",
    "minutes",
    "second",
    "seconds",
    "millisecond",
    "milliseconds",
];

impl Parser<'_> {
    fn advance(&mut self) -> Result<(), ParseError> {
        let (pos, tok) = self.lexer.next()?;
        self.tok = tok;
        self.tok_pos = pos;
        Ok(())
    }

    fn expect(&mut self, sym: &'static str) -> Result<(), ParseError> {
        if self.tok == Tok::Sym(sym) {
            self.advance()
        } else {
            Err(ParseError::new(
                self.tok_pos,
                format!("expected '{sym}', found {}", describe(&self.tok)),
            ))
        }
    }

    /// The infix operator at the current token and its binding power.
    fn infix(&self) -> Option<(u8, Infix)> {
        let op = match &self.tok {
            Tok::Sym(s) => match *s {
                "*" => Infix::Bin(BinOp::Mul),
                "/" => Infix::Bin(BinOp::Div),
                "+" => Infix::Bin(BinOp::Add),
                "-" => Infix::Bin(BinOp::Sub),
                "&" => Infix::Bin(BinOp::Concat),
                "|" => Infix::Bin(BinOp::Union),
                "<" => Infix::Bin(BinOp::Lt),
                ">" => Infix::Bin(BinOp::Gt),
                "<=" => Infix::Bin(BinOp::Le),
                ">=" => Infix::Bin(BinOp::Ge),
                "=" => Infix::Bin(BinOp::Eq),
                "!=" => Infix::Bin(BinOp::Ne),
                "~" => Infix::Bin(BinOp::Equiv),
                "!~" => Infix::Bin(BinOp::NotEquiv),
                _ => return None,
            },
            Tok::Ident(w, false) => match w.as_str() {
                "div" => Infix::Bin(BinOp::IntDiv),
                "mod" => Infix::Bin(BinOp::Mod),
                "is" => Infix::Is,
                "as" => Infix::As,
                "in" => Infix::Bin(BinOp::In),
                "contains" => Infix::Bin(BinOp::Contains),
                "and" => Infix::Bin(BinOp::And),
                "or" => Infix::Bin(BinOp::Or),
                "xor" => Infix::Bin(BinOp::Xor),
                "implies" => Infix::Bin(BinOp::Implies),
                _ => return None,
            },
            _ => return None,
        };
        let bp = match op {
            Infix::Bin(BinOp::Implies) => 1,
            Infix::Bin(BinOp::Or | BinOp::Xor) => 2,
            Infix::Bin(BinOp::And) => 3,
            Infix::Bin(BinOp::In | BinOp::Contains) => 4,
            Infix::Bin(BinOp::Eq | BinOp::Ne | BinOp::Equiv | BinOp::NotEquiv) => 5,
            Infix::Bin(BinOp::Lt | BinOp::Gt | BinOp::Le | BinOp::Ge) => 6,
            Infix::Bin(BinOp::Union) => 7,
            Infix::Is | Infix::As => 8,
            Infix::Bin(BinOp::Add | BinOp::Sub | BinOp::Concat) => 9,
            Infix::Bin(BinOp::Mul | BinOp::Div | BinOp::IntDiv | BinOp::Mod) => 10,
        };
        Some((bp, op))
    }

    /// Counts one more level of tree depth; chains (`a.b.c`, `1 + 2 + 3`) count per link, so
    /// `depth` bounds the depth of the tree being built, and with it evaluation's recursion.
    fn deeper(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::new(
                self.tok_pos,
                "expression nested too deeply",
            ));
        }
        Ok(())
    }

    fn expr(&mut self, min_bp: u8) -> Result<Ast, ParseError> {
        let entry = self.depth;
        self.deeper()?;
        let mut left = self.prefix()?;
        while let Some((bp, op)) = self.infix() {
            if bp <= min_bp {
                break;
            }
            if op == Infix::Bin(BinOp::Union) {
                self.advance()?;
                let right = self.expr(bp)?;
                left = match left {
                    Ast::Union(mut parts) => {
                        parts.push(right);
                        Ast::Union(parts)
                    }
                    other => {
                        self.deeper()?;
                        Ast::Union(vec![other, right])
                    }
                };
                continue;
            }
            self.deeper()?;
            self.advance()?;
            left = match op {
                Infix::Is => Ast::Is(Box::new(left), self.type_spec()?),
                Infix::As => Ast::As(Box::new(left), self.type_spec()?),
                Infix::Bin(op) => {
                    let right = self.expr(bp)?;
                    Ast::Binary(op, Box::new(left), Box::new(right))
                }
            };
        }
        self.depth = entry;
        Ok(left)
    }

    fn type_spec(&mut self) -> Result<TypeSpec, ParseError> {
        let Tok::Ident(first, _) = &self.tok else {
            return Err(ParseError::new(
                self.tok_pos,
                format!("expected a type name, found {}", describe(&self.tok)),
            ));
        };
        let first = first.clone();
        self.advance()?;
        if self.tok == Tok::Sym(".") {
            self.advance()?;
            let Tok::Ident(name, _) = &self.tok else {
                return Err(ParseError::new(
                    self.tok_pos,
                    "expected a type name after '.'",
                ));
            };
            let name = name.clone();
            self.advance()?;
            return Ok(TypeSpec {
                namespace: Some(first),
                name,
            });
        }
        Ok(TypeSpec {
            namespace: None,
            name: first,
        })
    }

    fn prefix(&mut self) -> Result<Ast, ParseError> {
        if self.tok == Tok::Sym("-") || self.tok == Tok::Sym("+") {
            let negate = self.tok == Tok::Sym("-");
            self.advance()?;
            // Unary sign binds tighter than multiplication, looser than '.'.
            let operand = self.expr(10)?;
            return Ok(if negate {
                match operand {
                    Ast::Literal(Literal::Integer(i)) => Ast::Literal(Literal::Integer(-i)),
                    Ast::Literal(Literal::Decimal(d)) => Ast::Literal(Literal::Decimal(-d)),
                    Ast::Literal(Literal::Quantity(d, u)) => Ast::Literal(Literal::Quantity(-d, u)),
                    other => Ast::Negate(Box::new(other)),
                }
            } else {
                operand
            });
        }
        let term = self.term()?;
        self.postfix(term)
    }

    fn postfix(&mut self, mut left: Ast) -> Result<Ast, ParseError> {
        loop {
            if self.tok == Tok::Sym(".") || self.tok == Tok::Sym("[") {
                self.deeper()?;
            }
            if self.tok == Tok::Sym(".") {
                self.advance()?;
                let pos = self.tok_pos;
                let Tok::Ident(name, _) = &self.tok else {
                    return Err(ParseError::new(
                        pos,
                        format!("expected a name after '.', found {}", describe(&self.tok)),
                    ));
                };
                let name = name.clone();
                self.advance()?;
                if self.tok == Tok::Sym("(") {
                    let args = self.args(&name, pos)?;
                    left = Ast::Call(Box::new(left), name, args);
                } else {
                    left = Ast::Member(Box::new(left), name);
                }
            } else if self.tok == Tok::Sym("[") {
                self.advance()?;
                let index = self.expr(0)?;
                self.expect("]")?;
                left = Ast::Index(Box::new(left), Box::new(index));
            } else {
                return Ok(left);
            }
        }
    }

    fn args(&mut self, name: &str, pos: usize) -> Result<Vec<Ast>, ParseError> {
        self.expect("(")?;
        let mut args = Vec::new();
        if self.tok != Tok::Sym(")") {
            loop {
                args.push(self.expr(0)?);
                if self.tok == Tok::Sym(",") {
                    self.advance()?;
                } else {
                    break;
                }
            }
        }
        self.expect(")")?;
        functions::check_call(name, &args).map_err(|m| ParseError::new(pos, m))?;
        Ok(args)
    }

    fn term(&mut self) -> Result<Ast, ParseError> {
        let pos = self.tok_pos;
        let tok = std::mem::replace(&mut self.tok, Tok::End);
        self.advance()?;
        Ok(match tok {
            Tok::Str(s) => Ast::Literal(Literal::String(s)),
            Tok::Number(n) => self.number(&n, pos)?,
            Tok::Date(d) => Ast::Literal(Literal::Date(d)),
            Tok::DateTime(d) => Ast::Literal(Literal::DateTime(d)),
            Tok::Time(t) => Ast::Literal(Literal::Time(t)),
            Tok::Env(name) => Ast::Variable(name),
            Tok::Dollar(d) => match d.as_str() {
                "this" => Ast::This,
                "index" => Ast::IndexVar,
                _ => Ast::Total,
            },
            Tok::Ident(w, delimited) => {
                if !delimited && (w == "true" || w == "false") {
                    Ast::Literal(Literal::Boolean(w == "true"))
                } else if self.tok == Tok::Sym("(") {
                    let args = self.args(&w, pos)?;
                    Ast::Function(w, args)
                } else {
                    Ast::Identifier(w)
                }
            }
            Tok::Sym("(") => {
                let inner = self.expr(0)?;
                self.expect(")")?;
                inner
            }
            Tok::Sym("{") => {
                self.expect("}")?;
                Ast::Empty
            }
            other => {
                return Err(ParseError::new(
                    pos,
                    format!("expected an expression, found {}", describe(&other)),
                ));
            }
        })
    }

    fn number(&mut self, text: &str, pos: usize) -> Result<Ast, ParseError> {
        let value: f64 = text
            .parse()
            .map_err(|_| ParseError::new(pos, format!("invalid number {text}")))?;
        let unit = match &self.tok {
            Tok::Str(u) => Some(u.clone()),
            Tok::Ident(w, false) if CALENDAR_UNITS.contains(&w.as_str()) => Some(w.clone()),
            _ => None,
        };
        if let Some(unit) = unit {
            self.advance()?;
            return Ok(Ast::Literal(Literal::Quantity(value, unit)));
        }
        if text.contains('.') {
            Ok(Ast::Literal(Literal::Decimal(value)))
        } else {
            text.parse::<i64>()
                .map(|i| Ast::Literal(Literal::Integer(i)))
                .map_err(|_| ParseError::new(pos, format!("integer {text} out of range")))
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Infix {
    Bin(BinOp),
    Is,
    As,
}
