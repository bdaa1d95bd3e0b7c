//! The parsed form of an expression.

/// A type name as written after `is`, `as`, `ofType`: optional namespace and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TypeSpec {
    /// `FHIR` or `System` when qualified.
    pub namespace: Option<String>,
    /// The type name (`Quantity`, `string`, `Patient`).
    pub name: String,
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Boolean(bool),
    String(String),
    Integer(i64),
    Decimal(f64),
    Date(String),
    DateTime(String),
    Time(String),
    Quantity(f64, String),
}

/// Binary operators, in the specification's spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Mul,
    Div,
    IntDiv,
    Mod,
    Add,
    Sub,
    Concat,
    Union,
    Lt,
    Gt,
    Le,
    Ge,
    Eq,
    Ne,
    Equiv,
    NotEquiv,
    In,
    Contains,
    And,
    Or,
    Xor,
    Implies,
}

/// An expression tree node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ast {
    /// `{}`
    Empty,
    Literal(Literal),
    /// An identifier in term position: a type name matching the focus, or a child name.
    Identifier(String),
    /// A function call in term position (applied to the focus).
    Function(String, Vec<Ast>),
    /// `left.name`
    Member(Box<Ast>, String),
    /// `left.name(args)`
    Call(Box<Ast>, String, Vec<Ast>),
    /// `left[index]`
    Index(Box<Ast>, Box<Ast>),
    /// `-x`
    Negate(Box<Ast>),
    Binary(BinOp, Box<Ast>, Box<Ast>),
    /// `a | b | c`, flattened so long unions do not nest.
    Union(Vec<Ast>),
    Is(Box<Ast>, TypeSpec),
    As(Box<Ast>, TypeSpec),
    /// `%name`
    Variable(String),
    This,
    IndexVar,
    Total,
}
