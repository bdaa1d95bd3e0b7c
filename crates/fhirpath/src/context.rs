//! What an evaluation may use besides the resource: resolver, model, variables.

use std::collections::HashMap;
use std::fmt;

use serde_json::Value;

use crate::item::Item;
use crate::model::Model;

/// Looks up the target of a reference (`"Patient/1"`, an absolute URL, a `urn:uuid:`), returning
/// the resource when it is available. Used by `resolve()`.
pub type Resolver<'a> = dyn Fn(&str) -> Option<&'a Value> + 'a;

/// The evaluation environment: an optional reference resolver, an optional type [`Model`],
/// environment variables (`%name`) and an optional root resource for `%resource`.
///
/// `Context::default()` evaluates with none of them: types are inferred from the JSON and
/// `resolve()` yields typed placeholders (see the crate docs).
#[derive(Default)]
pub struct Context<'a> {
    pub(crate) resolver: Option<Box<Resolver<'a>>>,
    pub(crate) model: Option<&'a dyn Model>,
    pub(crate) variables: HashMap<String, Vec<Item<'a>>>,
    pub(crate) resource: Option<&'a Value>,
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("resolver", &self.resolver.is_some())
            .field("model", &self.model.is_some())
            .field("variables", &self.variables)
            .field("resource", &self.resource.is_some())
            .finish()
    }
}

impl<'a> Context<'a> {
    /// An empty context (same as `Context::default()`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses `resolver` for `resolve()`; when it returns `None` the placeholder rules apply.
    #[must_use]
    pub fn with_resolver(mut self, resolver: impl Fn(&str) -> Option<&'a Value> + 'a) -> Self {
        self.resolver = Some(Box::new(resolver));
        self
    }

    /// Types nodes with `model` (choice elements, `ofType`, `is`, `as` on any element).
    #[must_use]
    pub fn with_model(mut self, model: &'a dyn Model) -> Self {
        self.model = Some(model);
        self
    }

    /// Defines the environment variable `%name` (without `%`) as `value`.
    #[must_use]
    pub fn with_variable(mut self, name: impl Into<String>, value: Vec<Item<'a>>) -> Self {
        self.variables.insert(name.into(), value);
        self
    }

    /// Sets `%resource` / `%rootResource` (and where `#id` references are looked up) when the
    /// evaluated value is a part of a resource, e.g. an Observation's component.
    #[must_use]
    pub fn with_resource(mut self, resource: &'a Value) -> Self {
        self.resource = Some(resource);
        self
    }
}
