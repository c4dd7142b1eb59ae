//! The XCCOS element tree is the shared bounded tree of [`crate::xml`], in its plain form
//! (local names, `xmlns` kept as an attribute).

pub use crate::xml::{Element, XmlError, XmlLimits, escape_into, parse};
