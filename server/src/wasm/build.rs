//! `warden build`: a bundle's Rego into an OPA-ABI Wasm module and an OPA
//! bundle around it.
//!
//! The module is the prebuilt runtime (`assets/opa-runtime.wasm`) with the
//! policy appended: a data segment holding the modules' sources and the
//! entrypoint, placed where the runtime's heap would have started; the body
//! of `warden_policy_blob` rewritten to return its location; the ABI version
//! globals; and the full set of ABI imports. The runtime compiles the policy
//! the first time the host calls in.

use serde_json::json;
use walrus::{ConstExpr, ExportItem, FunctionKind, GlobalKind, ValType, ir::Value as WasmValue};

use crate::bundle::{Bundle, BundleError, Files, write_tar_gz};

/// The runtime every module starts from; `scripts/build-wasm-runtime`
/// rebuilds it from `wasm-runtime/`, and CI checks the two agree.
pub const RUNTIME: &[u8] = include_bytes!("../../assets/opa-runtime.wasm");

/// The ABI version the runtime implements (1.3: `opa_eval`, value parsing,
/// path updates).
pub const ABI_VERSION: (i32, i32) = (1, 3);

const PAGE: u64 = 65536;

/// Why a bundle could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("runtime module: {0}")]
    Runtime(String),
    #[error("cannot write the bundle: {0}")]
    Write(String),
}

fn runtime_error(message: impl Into<String>) -> BuildError {
    BuildError::Runtime(message.into())
}

/// Compiles `bundle`'s Rego into a `policy.wasm` for its entrypoint.
pub fn build_module(bundle: &Bundle) -> Result<Vec<u8>, BuildError> {
    // The same compile the runtime will do, here, so errors surface at build
    // time with file names rather than as an abort inside a host.
    bundle
        .parse_modules()?
        .compile(&bundle.entrypoint_ref())
        .map_err(|e| BundleError::Module {
            path: bundle.entrypoint.clone(),
            message: e.to_string(),
        })?;
    let blob = serde_json::to_vec(&json!({
        "entrypoint": bundle.entrypoint,
        "modules": bundle
            .modules
            .iter()
            .map(|m| json!({"path": m.path, "source": m.source, "rego_v0": m.rego_v0}))
            .collect::<Vec<_>>(),
    }))
    .map_err(|e| runtime_error(e.to_string()))?;
    embed(&blob)
}

/// Appends `blob` to the runtime and wires it up.
fn embed(blob: &[u8]) -> Result<Vec<u8>, BuildError> {
    let mut module =
        walrus::Module::from_buffer(RUNTIME).map_err(|e| runtime_error(e.to_string()))?;

    let heap_base = u64::from(exported_i32_global(&module, "__heap_base")?);
    // Layout from the heap base: the message for unavailable host functions,
    // then the policy blob; the runtime's heap starts after the blob.
    let message = b"this function needs the host (a clock, randomness or JavaScript), which OPA's Wasm ABI does not provide\0";
    let message_address = heap_base;
    let address = (heap_base + message.len() as u64).next_multiple_of(8);
    let length = u64::try_from(blob.len()).map_err(|e| runtime_error(e.to_string()))?;
    let end = address + length;
    if end > u64::from(u32::MAX) {
        return Err(runtime_error("the policy is too large for a 32-bit module"));
    }

    let memory = module
        .memories
        .iter()
        .next()
        .map(|m| m.id())
        .ok_or_else(|| runtime_error("the runtime has no memory"))?;
    let i32_of = |value: u64| i32::try_from(value).map_err(|e| runtime_error(e.to_string()));
    for (at, bytes) in [(message_address, message.as_slice()), (address, blob)] {
        module.data.add(
            walrus::DataKind::Active {
                memory,
                offset: ConstExpr::Value(WasmValue::I32(i32_of(at)?)),
            },
            bytes.to_vec(),
        );
    }
    // What the runtime's dependencies export for wasm-bindgen goes first, and
    // with it the code only those exports reach.
    keep_only_abi_exports(&mut module, &["warden_policy_blob"]);
    walrus::passes::gc::run(&mut module);
    let custom: Vec<_> = module.customs.iter().map(|(id, _)| id).collect();
    for id in custom {
        module.customs.delete(id);
    }
    stub_foreign_imports(&mut module, i32_of(message_address)?)?;
    // The segment must lie inside the initial memory.
    let memory = module.memories.get_mut(memory);
    memory.initial = memory.initial.max(end.div_ceil(PAGE));

    // `warden_policy_blob` now returns (address << 32) | length.
    let locator = exported_function(&module, "warden_policy_blob")?;
    let FunctionKind::Local(function) = &mut module.funcs.get_mut(locator).kind else {
        return Err(runtime_error(
            "`warden_policy_blob` is not a local function",
        ));
    };
    let packed =
        i64::try_from((address << 32) | length).map_err(|e| runtime_error(e.to_string()))?;
    let mut body = function.builder_mut().func_body();
    body.instrs_mut().clear();
    body.i64_const(packed);
    keep_only_abi_exports(&mut module, &[]);

    for (name, value) in [
        ("opa_wasm_abi_version", ABI_VERSION.0),
        ("opa_wasm_abi_minor_version", ABI_VERSION.1),
    ] {
        let global = module.globals.add_local(
            ValType::I32,
            false,
            false,
            ConstExpr::Value(WasmValue::I32(value)),
        );
        module.exports.add(name, global);
    }

    // Every import of the ABI, whether or not the runtime calls it.
    let imports: [(&str, usize); 6] = [
        ("opa_println", 1),
        ("opa_builtin0", 2),
        ("opa_builtin1", 3),
        ("opa_builtin2", 4),
        ("opa_builtin3", 5),
        ("opa_builtin4", 6),
    ];
    for (name, params) in imports {
        if module.imports.find("env", name).is_none() {
            let results: &[ValType] = if name == "opa_println" {
                &[]
            } else {
                &[ValType::I32]
            };
            let ty = module.types.add(&vec![ValType::I32; params], results);
            module.add_import_func("env", name, ty);
        }
    }

    Ok(module.emit_wasm())
}

/// Replaces every function import outside the ABI — dependencies of the
/// runtime reach for JavaScript through wasm-bindgen when asked for the
/// clock or randomness — with a function that aborts through `opa_abort`, so
/// the module imports nothing a host does not provide, and a policy that
/// needs such a function fails (and is denied) with a message.
fn stub_foreign_imports(module: &mut walrus::Module, message: i32) -> Result<(), BuildError> {
    let abort = match module
        .imports
        .find("env", "opa_abort")
        .map(|id| &module.imports.get(id).kind)
    {
        Some(walrus::ImportKind::Function(f)) => *f,
        _ => return Err(runtime_error("the runtime does not import `env.opa_abort`")),
    };
    let foreign: Vec<walrus::FunctionId> = module
        .imports
        .iter()
        .filter(|i| i.module != "env")
        .filter_map(|i| match i.kind {
            walrus::ImportKind::Function(f) => Some(f),
            _ => None,
        })
        .collect();
    for function in foreign {
        module
            .replace_imported_func(function, |(body, _)| {
                body.i32_const(message).call(abort).unreachable();
            })
            .map_err(|e| runtime_error(e.to_string()))?;
    }
    Ok(())
}

fn exported_i32_global(module: &walrus::Module, name: &str) -> Result<u32, BuildError> {
    let export = module
        .exports
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| runtime_error(format!("the runtime does not export `{name}`")))?;
    let ExportItem::Global(global) = export.item else {
        return Err(runtime_error(format!("`{name}` is not a global")));
    };
    match module.globals.get(global).kind {
        GlobalKind::Local(ConstExpr::Value(WasmValue::I32(value))) => {
            u32::try_from(value).map_err(|e| runtime_error(e.to_string()))
        }
        _ => Err(runtime_error(format!("`{name}` is not a constant i32"))),
    }
}

fn exported_function(
    module: &walrus::Module,
    name: &str,
) -> Result<walrus::FunctionId, BuildError> {
    module
        .exports
        .iter()
        .find_map(|e| match (e.name == name, e.item) {
            (true, ExportItem::Function(f)) => Some(f),
            _ => None,
        })
        .ok_or_else(|| runtime_error(format!("the runtime does not export `{name}`")))
}

/// The functions OPA's Wasm ABI defines; `opa_wasm_abi_*` globals are
/// added after.
const ABI_EXPORTS: [&str; 19] = [
    "eval",
    "builtins",
    "entrypoints",
    "opa_eval",
    "opa_eval_ctx_new",
    "opa_eval_ctx_set_input",
    "opa_eval_ctx_set_data",
    "opa_eval_ctx_set_entrypoint",
    "opa_eval_ctx_get_result",
    "opa_malloc",
    "opa_free",
    "opa_json_parse",
    "opa_json_dump",
    "opa_value_parse",
    "opa_value_dump",
    "opa_value_add_path",
    "opa_value_remove_path",
    "opa_heap_ptr_get",
    "opa_heap_ptr_set",
];

/// Deletes every export but the ABI's (and `extra`).
fn keep_only_abi_exports(module: &mut walrus::Module, extra: &[&str]) {
    let doomed: Vec<_> = module
        .exports
        .iter()
        .filter(|e| !ABI_EXPORTS.contains(&e.name.as_str()) && !extra.contains(&e.name.as_str()))
        .map(|e| e.id())
        .collect();
    for id in doomed {
        module.exports.delete(id);
    }
}

/// Builds the OPA bundle `warden build` writes: `.manifest` (naming the
/// Wasm entrypoint), `policy.wasm`, `data.json` and the Rego sources, as a
/// gzip-compressed tar with fixed metadata, so the same input always gives
/// the same bytes.
pub fn build_bundle(bundle: &Bundle) -> Result<Vec<u8>, BuildError> {
    let wasm = build_module(bundle)?;
    let pages = crate::wasm::inspect(&wasm, u64::from(u32::MAX))
        .map_err(|e| runtime_error(e.to_string()))?
        .initial_pages;
    let mut manifest = json!({
        "revision": bundle.manifest.revision.clone().unwrap_or_default(),
        "roots": bundle.manifest.roots.clone().unwrap_or_else(|| vec![String::new()]),
        "wasm": [{"entrypoint": bundle.entrypoint, "module": "/policy.wasm"}],
        // Hosts that create the memory themselves (OPA's JavaScript SDK
        // defaults to 5 pages) need at least this many.
        "metadata": {"entrypoint": bundle.entrypoint, "wasm_memory_pages": pages},
    });
    if let (Some(object), Some(version)) = (manifest.as_object_mut(), bundle.manifest.rego_version)
    {
        object.insert("rego_version".into(), json!(version));
    }
    let json = |value: &serde_json::Value| {
        serde_json::to_vec(value).map_err(|e| BuildError::Write(e.to_string()))
    };
    let mut files = Files::new();
    files.insert(".manifest".into(), json(&manifest)?);
    files.insert(
        "data.json".into(),
        serde_json::to_vec(&bundle.data).map_err(|e| BuildError::Write(e.to_string()))?,
    );
    files.insert("policy.wasm".into(), wasm);
    for module in &bundle.modules {
        files.insert(module.path.clone(), module.source.clone().into_bytes());
    }
    write_tar_gz(&files).map_err(|e| BuildError::Write(e.to_string()))
}
