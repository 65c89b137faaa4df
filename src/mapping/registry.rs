//! [`Registry`]: the custom transforms, normalizers and conflict resolvers a
//! config file refers to by name.

use std::sync::Arc;

use indexmap::IndexMap;

use super::{Normalizer, Transform};
use crate::policy::ConflictResolver;

/// The code a config file refers to by name: custom [`Transform`]s,
/// [`Normalizer`]s and [`ConflictResolver`]s, each registered under its own
/// `name()`. Hand it to [`FieldMap::from_json`](super::FieldMap::from_json)
/// and friends; a name the file uses that the registry lacks is an error
/// naming the entry.
///
/// ```
/// use recsync::mapping::{Registry, Transform, TransformError};
/// use serde_json::Value;
///
/// #[derive(Debug)]
/// struct Upper;
///
/// impl Transform for Upper {
///     fn name(&self) -> &str { "upper" }
///     fn to_canonical(&self, v: &Value) -> Result<Value, TransformError> { Ok(v.clone()) }
///     fn from_canonical(&self, v: &Value) -> Result<Value, TransformError> {
///         let s = v.as_str().ok_or_else(|| TransformError::wrong_type("string", v))?;
///         Ok(Value::from(s.to_uppercase()))
///     }
///     fn lossy(&self) -> bool { true }
/// }
///
/// let registry = Registry::new().transform(Upper);
/// assert!(registry.get_transform("upper").is_some());
/// assert!(registry.get_transform("lower").is_none());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Registry {
    transforms: IndexMap<String, Arc<dyn Transform>>,
    normalizers: IndexMap<String, Arc<dyn Normalizer>>,
    resolvers: IndexMap<String, Arc<dyn ConflictResolver>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry::default()
    }

    /// Registers a transform under its name (replacing one of the same
    /// name).
    #[must_use]
    pub fn transform(self, transform: impl Transform + 'static) -> Self {
        self.transform_shared(Arc::new(transform))
    }

    /// Registers a shared transform under its name.
    #[must_use]
    pub fn transform_shared(mut self, transform: Arc<dyn Transform>) -> Self {
        self.transforms
            .insert(transform.name().to_owned(), transform);
        self
    }

    /// Registers a normalizer under its name.
    #[must_use]
    pub fn normalizer(mut self, normalizer: impl Normalizer + 'static) -> Self {
        self.normalizers
            .insert(normalizer.name().to_owned(), Arc::new(normalizer));
        self
    }

    /// Registers a conflict resolver under its name.
    #[must_use]
    pub fn resolver(mut self, resolver: impl ConflictResolver + 'static) -> Self {
        self.resolvers
            .insert(resolver.name().to_owned(), Arc::new(resolver));
        self
    }

    /// The transform registered as `name`.
    pub fn get_transform(&self, name: &str) -> Option<&Arc<dyn Transform>> {
        self.transforms.get(name)
    }

    /// The normalizer registered as `name`.
    pub fn get_normalizer(&self, name: &str) -> Option<&Arc<dyn Normalizer>> {
        self.normalizers.get(name)
    }

    /// The conflict resolver registered as `name`.
    pub fn get_resolver(&self, name: &str) -> Option<&Arc<dyn ConflictResolver>> {
        self.resolvers.get(name)
    }
}
