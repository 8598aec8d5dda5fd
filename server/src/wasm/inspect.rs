//! Checking a module against OPA's Wasm ABI before it is instantiated, so
//! that a malformed or hostile module is refused with a precise reason and
//! never runs.

use wasmparser::{Parser, Payload, TypeRef};

/// Why a module was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InspectError {
    #[error("not a Wasm module: {0}")]
    Malformed(String),
    #[error("imports `{module}.{name}`, which is outside OPA's Wasm ABI")]
    ForeignImport { module: String, name: String },
    #[error("does not import its memory as `env.memory`, as OPA's Wasm ABI requires")]
    NoMemoryImport,
    #[error("defines its own memory; OPA's Wasm ABI imports it as `env.memory`")]
    OwnMemory,
    #[error("asks for {pages} pages of initial memory, more than the limit of {limit}")]
    MemoryTooLarge { pages: u64, limit: u64 },
    #[error("lacks the export `{0}` that OPA's Wasm ABI requires")]
    MissingExport(&'static str),
}

/// Functions every host calls.
const REQUIRED_FUNCTIONS: [&str; 14] = [
    "eval",
    "builtins",
    "entrypoints",
    "opa_eval_ctx_new",
    "opa_eval_ctx_set_input",
    "opa_eval_ctx_set_data",
    "opa_eval_ctx_set_entrypoint",
    "opa_eval_ctx_get_result",
    "opa_malloc",
    "opa_free",
    "opa_json_parse",
    "opa_json_dump",
    "opa_heap_ptr_get",
    "opa_heap_ptr_set",
];

const REQUIRED_GLOBALS: [&str; 2] = ["opa_wasm_abi_version", "opa_wasm_abi_minor_version"];

/// Imports a module may have: the memory, abort, print and the builtin
/// trampolines.
fn allowed_import(module: &str, name: &str) -> bool {
    module == "env"
        && matches!(
            name,
            "memory"
                | "opa_abort"
                | "opa_println"
                | "opa_builtin0"
                | "opa_builtin1"
                | "opa_builtin2"
                | "opa_builtin3"
                | "opa_builtin4"
        )
}

/// What a valid module declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// Initial pages of the imported memory.
    pub initial_pages: u64,
}

/// Checks `bytes` against the ABI; `max_pages` bounds the initial memory.
pub fn inspect(bytes: &[u8], max_pages: u64) -> Result<ModuleInfo, InspectError> {
    let malformed = |e: wasmparser::BinaryReaderError| InspectError::Malformed(e.to_string());
    let mut initial_pages = None;
    let mut exports = Vec::new();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(malformed)? {
            Payload::ImportSection(section) => {
                for import in section {
                    let import = import.map_err(malformed)?;
                    if !allowed_import(import.module, import.name) {
                        return Err(InspectError::ForeignImport {
                            module: import.module.to_owned(),
                            name: import.name.to_owned(),
                        });
                    }
                    match (import.name, import.ty) {
                        ("memory", TypeRef::Memory(memory)) => initial_pages = Some(memory.initial),
                        ("memory", _) => return Err(InspectError::NoMemoryImport),
                        (_, TypeRef::Func(_)) => {}
                        (name, _) => {
                            return Err(InspectError::ForeignImport {
                                module: "env".into(),
                                name: name.to_owned(),
                            });
                        }
                    }
                }
            }
            Payload::MemorySection(section) if section.count() > 0 => {
                return Err(InspectError::OwnMemory);
            }
            Payload::ExportSection(section) => {
                for export in section {
                    let export = export.map_err(malformed)?;
                    exports.push((export.name.to_owned(), export.kind));
                }
            }
            _ => {}
        }
    }
    let initial_pages = initial_pages.ok_or(InspectError::NoMemoryImport)?;
    if initial_pages > max_pages {
        return Err(InspectError::MemoryTooLarge {
            pages: initial_pages,
            limit: max_pages,
        });
    }
    let has = |name: &str, kind: wasmparser::ExternalKind| {
        exports.iter().any(|(n, k)| n == name && *k == kind)
    };
    for name in REQUIRED_FUNCTIONS {
        if !has(name, wasmparser::ExternalKind::Func) {
            return Err(InspectError::MissingExport(name));
        }
    }
    for name in REQUIRED_GLOBALS {
        if !has(name, wasmparser::ExternalKind::Global) {
            return Err(InspectError::MissingExport(name));
        }
    }
    Ok(ModuleInfo { initial_pages })
}
