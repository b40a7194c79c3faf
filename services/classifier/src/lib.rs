pub mod error;
pub mod eval;
pub mod features;
pub mod model;
pub mod tokenize;
