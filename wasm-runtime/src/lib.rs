//! An implementation of OPA's Wasm ABI (version 1.3) around regorus.
//!
//! `warden build` takes this module, appends a policy blob (the bundle's Rego
//! and its entrypoint) after the static data, points `warden_policy_blob` at
//! it and adds the ABI version globals. Any OPA Wasm host — the `opa-wasm`
//! crate, OPA's JavaScript SDK — can then load data and evaluate the policy.
//!
//! Memory model, as both hosts drive a module: the host loads data with
//! `opa_malloc` + `opa_json_parse`, reads `opa_heap_ptr_get` once, and starts
//! every evaluation again from that heap pointer, overwriting whatever the
//! previous evaluation allocated. So the allocator is a bump allocator that
//! `opa_heap_ptr_set` and `opa_eval` move back, and everything that must
//! outlive an evaluation — the compiled policy, lazily built tables inside
//! regorus — is created before the host loads data (`init`, on the first
//! exported call, runs a warm-up evaluation for that reason).

#![cfg(target_arch = "wasm32")]

use std::alloc::{GlobalAlloc, Layout};
use std::cell::UnsafeCell;

use regorus::Value;
use serde::Deserialize;
use warden_rego::{Limits, Policy};

// --- Imports: the host functions OPA's ABI defines. ---------------------

#[link(wasm_import_module = "env")]
unsafe extern "C" {
    /// Aborts evaluation with a NUL-terminated message; does not return.
    fn opa_abort(message: *const u8);
}
// The ABI's other imports (`opa_println`, `opa_builtin0..4`) are never
// called: every builtin runs inside the module and `builtins()` is empty.
// `warden build` declares them, so the module's imports are the ABI's.

// --- The bump allocator. --------------------------------------------------

const PAGE: usize = 65536;

/// Single-threaded global state: wasm32-unknown-unknown has one thread.
struct Global<T>(UnsafeCell<T>);

// SAFETY: this module runs on a single thread (no wasm threads are enabled),
// so there is never concurrent access.
unsafe impl<T> Sync for Global<T> {}

impl<T> Global<T> {
    const fn new(value: T) -> Self {
        Global(UnsafeCell::new(value))
    }

    fn get(&self) -> *mut T {
        self.0.get()
    }
}

/// The next free address; 0 until the first allocation places it after the
/// policy blob.
static HEAP: Global<usize> = Global::new(0);

/// Where the host last reset the heap. Memory below it belongs to data and
/// the compiled policy, which outlive evaluations, so freeing never moves
/// the heap pointer below it.
static FLOOR: Global<usize> = Global::new(0);

fn reset_heap(address: usize) {
    // SAFETY: single-threaded (see `Global`).
    unsafe {
        *HEAP.get() = address;
        *FLOOR.get() = address;
        // Freed blocks above the new heap pointer are about to be
        // overwritten; the lists must not hand them out.
        *FREE.get() = [0; CLASSES];
    }
}

fn above_floor(address: usize) -> bool {
    // SAFETY: single-threaded (see `Global`).
    address >= unsafe { *FLOOR.get() }
}

/// Small blocks are recycled through per-size free lists (8 bytes to 4 KiB,
/// powers of two), so an evaluation reuses warm memory instead of marching
/// through fresh pages; each freed block stores the next one's address.
const CLASSES: usize = 10;
const SMALLEST: usize = 8;
static FREE: Global<[usize; CLASSES]> = Global::new([0; CLASSES]);

/// The size class of a layout, if it is small enough to recycle.
fn class(layout: Layout) -> Option<usize> {
    if layout.align() > 16 {
        return None;
    }
    let size = layout
        .size()
        .max(layout.align())
        .max(SMALLEST)
        .next_power_of_two();
    let index = (size.trailing_zeros() - SMALLEST.trailing_zeros()) as usize;
    (index < CLASSES).then_some(index)
}

fn class_layout(index: usize) -> Layout {
    let size = SMALLEST << index;
    // INVARIANT: a class block is aligned to min(size, 16), which satisfies
    // every layout `class` maps to it.
    Layout::from_size_align(size, size.min(16)).unwrap_or(Layout::new::<u64>())
}

struct Bump;

#[global_allocator]
static ALLOCATOR: Bump = Bump;

unsafe extern "C" {
    /// Start of the heap, after stack and static data (set by the linker).
    static __heap_base: u8;
}

fn heap_start() -> usize {
    // The policy blob sits at the heap base; the heap proper follows it.
    let (address, length) = blob_location();
    if length > 0 {
        address + length
    } else {
        // Only the symbol's address is taken.
        &raw const __heap_base as usize
    }
}

/// Takes `layout` from the top of the heap, growing memory when needed.
fn bump(layout: Layout) -> *mut u8 {
    // SAFETY: single-threaded (see `Global`).
    let heap = unsafe { &mut *HEAP.get() };
    if *heap == 0 {
        *heap = heap_start();
    }
    let start = (*heap + layout.align() - 1) & !(layout.align() - 1);
    let Some(end) = start.checked_add(layout.size()) else {
        return std::ptr::null_mut();
    };
    let available = core::arch::wasm32::memory_size(0) * PAGE;
    if end > available {
        let pages = (end - available).div_ceil(PAGE);
        if core::arch::wasm32::memory_grow(0, pages) == usize::MAX {
            return std::ptr::null_mut();
        }
    }
    *heap = end;
    start as *mut u8
}

unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some(index) = class(layout) else {
            return bump(layout);
        };
        // SAFETY: single-threaded (see `Global`).
        let free = unsafe { &mut *FREE.get() };
        if free[index] != 0 {
            let block = free[index];
            // SAFETY: a freed block of this class holds the next block's
            // address in its first word.
            free[index] = unsafe { *(block as *const usize) };
            return block as *mut u8;
        }
        bump(class_layout(index))
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let address = ptr as usize;
        // Blocks below the floor belong to data and the compiled policy:
        // never recycled. Everything else is reclaimed when the host resets
        // the heap pointer, if not before.
        if !above_floor(address) {
            return;
        }
        match class(layout) {
            Some(index) => {
                // SAFETY: single-threaded; the block is at least a word long
                // and no longer used by its owner.
                unsafe {
                    let free = &mut *FREE.get();
                    *(address as *mut usize) = free[index];
                    free[index] = address;
                }
            }
            None => {
                // The most recent large allocation gives its space back.
                // SAFETY: single-threaded (see `Global`).
                let heap = unsafe { &mut *HEAP.get() };
                if address + layout.size() == *heap {
                    *heap = address;
                }
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `layout` is the block's layout and `new_size` is non-zero,
        // as GlobalAlloc::realloc requires of its caller.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let old_class = class(layout);
        if old_class.is_some() && old_class == class(new_layout) {
            return ptr;
        }
        if old_class.is_none() && class(new_layout).is_none() && above_floor(ptr as usize) {
            // SAFETY: single-threaded (see `Global`).
            let heap = unsafe { &mut *HEAP.get() };
            if ptr as usize + layout.size() == *heap {
                // The last large allocation grows (or shrinks) in place.
                let Some(end) = (ptr as usize).checked_add(new_size) else {
                    return std::ptr::null_mut();
                };
                let available = core::arch::wasm32::memory_size(0) * PAGE;
                if end > available
                    && core::arch::wasm32::memory_grow(0, (end - available).div_ceil(PAGE))
                        == usize::MAX
                {
                    return std::ptr::null_mut();
                }
                *heap = end;
                return ptr;
            }
        }
        // SAFETY: a fresh block of `new_size` bytes.
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are valid for the smaller of the two sizes
            // and do not overlap (the new one was free).
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

// --- The policy blob. -----------------------------------------------------

/// Where `warden build` put the policy blob: address in the high 32 bits,
/// length in the low 32. `warden build` replaces this function's body; the
/// unpatched runtime has no policy.
#[unsafe(no_mangle)]
#[inline(never)]
pub extern "C" fn warden_policy_blob() -> u64 {
    // A value the optimiser cannot fold, so that callers keep calling the
    // function whose body `warden build` rewrites.
    core::hint::black_box(0)
}

fn blob_location() -> (usize, usize) {
    let location = warden_policy_blob();
    ((location >> 32) as usize, (location & 0xffff_ffff) as usize)
}

#[derive(Deserialize)]
struct Blob {
    /// Slash-separated, as hosts name entrypoints (`warden/authz/decision`).
    entrypoint: String,
    modules: Vec<BlobModule>,
}

#[derive(Deserialize)]
struct BlobModule {
    path: String,
    source: String,
    #[serde(default)]
    rego_v0: bool,
}

struct State {
    entrypoint: String,
    policy: Policy,
}

static STATE: Global<Option<State>> = Global::new(None);

/// The compiled policy, built on the first exported call — before the host
/// loads data, so that it lives below the heap pointer hosts reset to.
fn state() -> &'static State {
    // SAFETY: single-threaded; the state is written once, here, and never
    // moved afterwards.
    let slot = unsafe { &mut *STATE.get() };
    if slot.is_none() {
        *slot = Some(init().unwrap_or_else(|message| abort(&message)));
    }
    match slot {
        Some(state) => state,
        None => abort("runtime state missing"),
    }
}

fn init() -> Result<State, String> {
    std::panic::set_hook(Box::new(|info| abort(&info.to_string())));
    let (address, length) = blob_location();
    if length == 0 {
        return Err("this module holds no policy: build it with `warden build`".into());
    }
    // SAFETY: `warden build` placed `length` bytes at `address` in a data
    // segment that lies inside the module's initial memory.
    let bytes = unsafe { std::slice::from_raw_parts(address as *const u8, length) };
    let blob: Blob =
        serde_json::from_slice(bytes).map_err(|e| format!("corrupt policy blob: {e}"))?;
    let modules: Vec<warden_rego::Module> = blob
        .modules
        .into_iter()
        .map(|m| warden_rego::Module {
            path: m.path,
            source: m.source,
            rego_v0: m.rego_v0,
        })
        .collect();
    let rule = format!("data.{}", blob.entrypoint.replace('/', "."));
    let policy = warden_rego::parse(&modules)
        .and_then(|parsed| parsed.compile(&rule))
        .map_err(|e| e.to_string())?;
    // Warm-up: first evaluations initialise regorus's lazily built tables;
    // doing it now keeps them out of the memory evaluations reuse.
    let empty = Value::new_object();
    if let Ok(mut evaluator) = policy.evaluator(&empty, limits(), Default::default()) {
        let _ = evaluator.eval(Value::new_object());
    }
    if let Ok(sample) = serde_json::from_slice::<Value>(br#"{"a":[1,2.5,"x",null,true]}"#) {
        let _ = serde_json::to_vec(&sample);
    }
    Ok(State {
        entrypoint: blob.entrypoint,
        policy,
    })
}

fn limits() -> Limits {
    // There is no clock here; the host enforces deadlines (wasmtime epochs).
    Limits {
        timeout: None,
        max_instructions: usize::MAX,
    }
}

fn abort(message: &str) -> ! {
    let mut text = message.replace('\0', " ").into_bytes();
    text.push(0);
    // SAFETY: a NUL-terminated string; opa_abort does not return.
    unsafe { opa_abort(text.as_ptr()) };
    core::arch::wasm32::unreachable()
}

// --- Values: boxed regorus values, addressed by pointer. ----------------

fn new_value(value: Value) -> i32 {
    Box::into_raw(Box::new(value)) as i32
}

/// The value at `address`, which the host got from this module.
fn value<'a>(address: i32) -> Option<&'a mut Value> {
    if address == 0 {
        return None;
    }
    // SAFETY: hosts pass back addresses this module returned from
    // `opa_json_parse`/`opa_value_parse` or evaluation; the ABI makes that
    // their obligation.
    Some(unsafe { &mut *(address as *mut Value) })
}

fn bytes<'a>(address: i32, length: i32) -> &'a [u8] {
    if address == 0 || length <= 0 {
        return &[];
    }
    // SAFETY: the host wrote `length` bytes at `address`.
    unsafe { std::slice::from_raw_parts(address as *const u8, length as usize) }
}

/// A NUL-terminated copy of `text`, leaked to the host.
fn c_string(mut text: Vec<u8>) -> i32 {
    text.push(0);
    let pointer = text.as_ptr() as i32;
    std::mem::forget(text);
    pointer
}

fn parse(address: i32, length: i32) -> i32 {
    state();
    // Some hosts (the `opa-wasm` crate) count a trailing NUL in the length.
    let text = bytes(address, length);
    let text = text.strip_suffix(b"\0").unwrap_or(text);
    match serde_json::from_slice::<Value>(text) {
        Ok(parsed) => new_value(parsed),
        Err(_) => 0,
    }
}

fn dump(address: i32) -> i32 {
    state();
    let json = match value(address) {
        Some(v) => serde_json::to_vec(v).unwrap_or_else(|_| b"null".to_vec()),
        None => b"null".to_vec(),
    };
    c_string(json)
}

// --- Exports. -------------------------------------------------------------

#[unsafe(no_mangle)]
pub extern "C" fn opa_malloc(size: i32) -> i32 {
    state();
    let layout = Layout::from_size_align(size.max(0) as usize, 8)
        .unwrap_or_else(|_| abort("opa_malloc: bad size"));
    // SAFETY: any layout is acceptable to the bump allocator.
    let pointer = unsafe { ALLOCATOR.alloc(layout) };
    if pointer.is_null() {
        abort("opa_malloc: out of memory");
    }
    pointer as i32
}

/// Memory is reclaimed by resetting the heap pointer, as hosts do between
/// evaluations.
#[unsafe(no_mangle)]
pub extern "C" fn opa_free(_address: i32) {}

#[unsafe(no_mangle)]
pub extern "C" fn opa_heap_ptr_get() -> i32 {
    state();
    // SAFETY: single-threaded (see `Global`).
    unsafe { *HEAP.get() as i32 }
}

#[unsafe(no_mangle)]
pub extern "C" fn opa_heap_ptr_set(address: i32) {
    state();
    reset_heap(address as usize);
}

#[unsafe(no_mangle)]
pub extern "C" fn opa_json_parse(address: i32, length: i32) -> i32 {
    parse(address, length)
}

/// Rego value text is a superset of JSON; this runtime accepts its JSON part.
#[unsafe(no_mangle)]
pub extern "C" fn opa_value_parse(address: i32, length: i32) -> i32 {
    parse(address, length)
}

#[unsafe(no_mangle)]
pub extern "C" fn opa_json_dump(address: i32) -> i32 {
    dump(address)
}

#[unsafe(no_mangle)]
pub extern "C" fn opa_value_dump(address: i32) -> i32 {
    dump(address)
}

/// OPA's error codes for the path functions.
const OK: i32 = 0;
const ERR_INVALID_TYPE: i32 = 2;
const ERR_INVALID_PATH: i32 = 3;

fn path_keys(address: i32) -> Option<Vec<Value>> {
    match value(address)? {
        Value::Array(items) => Some(items.iter().cloned().collect()),
        _ => None,
    }
}

/// Sets `value` at `path` (an array of keys) inside `base`, creating
/// objects on the way.
#[unsafe(no_mangle)]
pub extern "C" fn opa_value_add_path(base: i32, path: i32, item: i32) -> i32 {
    state();
    let (Some(keys), Some(item)) = (path_keys(path), value(item).cloned()) else {
        return ERR_INVALID_TYPE;
    };
    let Some(mut target) = value(base) else {
        return ERR_INVALID_TYPE;
    };
    let Some((last, parents)) = keys.split_last() else {
        return ERR_INVALID_PATH;
    };
    for key in parents {
        let Ok(object) = target.as_object_mut() else {
            return ERR_INVALID_PATH;
        };
        target = object.get_or_insert_with(key.clone(), Value::new_object);
    }
    match target.as_object_mut() {
        Ok(object) => {
            object.insert(last.clone(), item);
            OK
        }
        Err(_) => ERR_INVALID_PATH,
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn opa_value_remove_path(base: i32, path: i32) -> i32 {
    state();
    let Some(keys) = path_keys(path) else {
        return ERR_INVALID_TYPE;
    };
    let Some(mut target) = value(base) else {
        return ERR_INVALID_TYPE;
    };
    let Some((last, parents)) = keys.split_last() else {
        return ERR_INVALID_PATH;
    };
    for key in parents {
        match target.as_object_mut().ok().and_then(|o| o.get_mut(key)) {
            Some(next) => target = next,
            None => return ERR_INVALID_PATH,
        }
    }
    match target.as_object_mut().map(|object| object.remove(last)) {
        Ok(Some(_)) => OK,
        _ => ERR_INVALID_PATH,
    }
}

/// `{"<entrypoint>": 0}`: one entrypoint per module.
#[unsafe(no_mangle)]
pub extern "C" fn entrypoints() -> i32 {
    let state = state();
    let mut map = std::collections::BTreeMap::new();
    map.insert(Value::from(state.entrypoint.as_str()), Value::from(0u64));
    new_value(Value::from(map))
}

/// Every builtin runs inside the module; the host provides none.
#[unsafe(no_mangle)]
pub extern "C" fn builtins() -> i32 {
    state();
    new_value(Value::new_object())
}

/// An evaluation context for the ABI 1.0/1.1 path.
struct Context {
    input: i32,
    data: i32,
    entrypoint: i32,
    result: i32,
}

#[unsafe(no_mangle)]
pub extern "C" fn opa_eval_ctx_new() -> i32 {
    state();
    Box::into_raw(Box::new(Context {
        input: 0,
        data: 0,
        entrypoint: 0,
        result: 0,
    })) as i32
}

fn context<'a>(address: i32) -> &'a mut Context {
    if address == 0 {
        abort("null evaluation context");
    }
    // SAFETY: hosts pass back addresses from `opa_eval_ctx_new`.
    unsafe { &mut *(address as *mut Context) }
}

#[unsafe(no_mangle)]
pub extern "C" fn opa_eval_ctx_set_input(ctx: i32, input: i32) {
    context(ctx).input = input;
}

#[unsafe(no_mangle)]
pub extern "C" fn opa_eval_ctx_set_data(ctx: i32, data: i32) {
    context(ctx).data = data;
}

#[unsafe(no_mangle)]
pub extern "C" fn opa_eval_ctx_set_entrypoint(ctx: i32, entrypoint: i32) {
    context(ctx).entrypoint = entrypoint;
}

#[unsafe(no_mangle)]
pub extern "C" fn opa_eval_ctx_get_result(ctx: i32) -> i32 {
    context(ctx).result
}

#[unsafe(no_mangle)]
pub extern "C" fn eval(ctx: i32) -> i32 {
    let ctx = context(ctx);
    let input = value(ctx.input).cloned().unwrap_or(Value::Undefined);
    let data = value(ctx.data).cloned().unwrap_or_else(Value::new_object);
    ctx.result = new_value(result_set(evaluate(ctx.entrypoint, &data, input)));
    OK
}

/// The ABI 1.2 fast path: input as JSON bytes, result set as JSON text.
#[unsafe(no_mangle)]
pub extern "C" fn opa_eval(
    _reserved: i32,
    entrypoint: i32,
    data: i32,
    input: i32,
    input_length: i32,
    heap: i32,
    _format: i32,
) -> i32 {
    state();
    // Everything from `heap` up is free: the previous evaluation is dead.
    reset_heap(heap as usize);
    let input = if input_length > 0 {
        serde_json::from_slice::<Value>(bytes(input, input_length))
            .unwrap_or_else(|e| abort(&format!("input is not JSON: {e}")))
    } else {
        Value::Undefined
    };
    let data = value(data).cloned().unwrap_or_else(Value::new_object);
    let results = result_set(evaluate(entrypoint, &data, input));
    c_string(
        serde_json::to_vec(&results).unwrap_or_else(|e| abort(&format!("result is not JSON: {e}"))),
    )
}

/// Evaluates the entrypoint; an evaluation error aborts, as in modules that
/// OPA compiles, and hosts report it as an error.
fn evaluate(entrypoint: i32, data: &Value, input: Value) -> Value {
    let state = state();
    if entrypoint != 0 {
        abort(&format!("unknown entrypoint id {entrypoint}"));
    }
    let mut evaluator = state
        .policy
        // A host per evaluation: the host resets the heap after each one, so
        // nothing built during an evaluation (the audience index) may
        // outlive it.
        .evaluator(data, limits(), Default::default())
        .unwrap_or_else(|e| abort(&e.to_string()));
    evaluator
        .eval(input)
        .unwrap_or_else(|e| abort(&e.to_string()))
}

/// `[{"result": value}]`, or `[]` when the entrypoint is undefined.
fn result_set(result: Value) -> Value {
    if result == Value::Undefined {
        return Value::from(Vec::<Value>::new());
    }
    let mut row = std::collections::BTreeMap::new();
    row.insert(Value::from("result"), result);
    Value::from(vec![Value::from(row)])
}
