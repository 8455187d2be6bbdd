//! What a module is: a name and the services any provider of it must offer.

use std::any::{TypeId, type_name};

/// A module, such as `core`, `storage` or `telemetry`: the contract its providers fulfil.
#[derive(Debug, Clone)]
pub struct ModuleDefinition {
    /// The name used as the top-level key of `application.yml`.
    pub name: &'static str,
    /// The services every provider of this module registers during `prepare`.
    pub services: Vec<ServiceDecl>,
}

impl ModuleDefinition {
    /// A module with the given services.
    pub fn new(name: &'static str, services: Vec<ServiceDecl>) -> Self {
        Self { name, services }
    }
}

/// One service type a module offers, e.g. `Arc<dyn MetricsCreator>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceDecl {
    /// The identity of the service type.
    pub type_id: TypeId,
    /// Its name, for messages.
    pub type_name: &'static str,
}

impl ServiceDecl {
    /// The declaration of service type `T` (usually an `Arc` of a trait object or struct).
    pub fn of<T: 'static>() -> Self {
        Self { type_id: TypeId::of::<T>(), type_name: type_name::<T>() }
    }
}
