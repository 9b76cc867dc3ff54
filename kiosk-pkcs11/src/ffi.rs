//! The C boundary: `C_GetFunctionList` hands out the fronted module's
//! function list with `C_OpenSession` replaced by one that logs in.
#![allow(unsafe_code)]

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use cryptoki_sys::{
    CK_FLAGS, CK_FUNCTION_LIST, CK_NOTIFY, CK_RV, CK_SESSION_HANDLE, CK_SESSION_INFO, CK_SLOT_ID,
    CK_ULONG, CKR_ARGUMENTS_BAD, CKR_FUNCTION_NOT_SUPPORTED, CKR_GENERAL_ERROR, CKR_OK,
    CKR_PIN_INCORRECT, CKR_PIN_INVALID, CKR_PIN_LEN_RANGE, CKR_PIN_LOCKED,
    CKR_USER_ALREADY_LOGGED_IN, CKS_RO_PUBLIC_SESSION, CKS_RW_PUBLIC_SESSION, CKU_USER,
};

use crate::read_passcode;

/// The module fronted, loaded for the life of the process.
struct Fronted {
    _library: libloading::Library,
    real: CK_FUNCTION_LIST,
    ours: CK_FUNCTION_LIST,
}

static FRONTED: OnceLock<Option<Fronted>> = OnceLock::new();

/// Whether a passcode was refused: never sent again. Held across a login,
/// so two sessions opening at once send it once.
static REFUSED: Mutex<bool> = Mutex::new(false);

fn fronted() -> Option<&'static Fronted> {
    FRONTED.get_or_init(load).as_ref()
}

fn load() -> Option<Fronted> {
    let name = std::env::var_os("S9CARD_KIOSK_MODULE").unwrap_or_else(|| "opensc-pkcs11.so".into());
    // SAFETY: loading a PKCS#11 module runs its initialisers, as loading
    // it into any PKCS#11 application does.
    let library = unsafe { libloading::Library::new(&name) }.ok()?;
    type GetList = unsafe extern "C" fn(*mut *mut CK_FUNCTION_LIST) -> CK_RV;
    // SAFETY: every PKCS#11 module exports C_GetFunctionList with this
    // signature.
    let get = unsafe { library.get::<GetList>(b"C_GetFunctionList\0") }.ok()?;
    let mut list: *mut CK_FUNCTION_LIST = std::ptr::null_mut();
    // SAFETY: `list` is a valid place for the pointer the module writes.
    if unsafe { get(&mut list) } != CKR_OK || list.is_null() {
        return None;
    }
    // SAFETY: the module's list lives as long as the module, which this
    // struct keeps loaded; it is copied, not kept.
    let real = unsafe { *list };
    let ours = CK_FUNCTION_LIST {
        C_GetFunctionList: Some(C_GetFunctionList),
        C_OpenSession: Some(open_session),
        C_GetSessionInfo: Some(session_info),
        ..real
    };
    Some(Fronted {
        _library: library,
        real,
        ours,
    })
}

/// The module's entry point: the fronted module's functions, with
/// `C_OpenSession` ours.
///
/// # Safety
/// `list` must be null or valid for a write, as PKCS#11 requires.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn C_GetFunctionList(list: *mut *mut CK_FUNCTION_LIST) -> CK_RV {
    if list.is_null() {
        return CKR_ARGUMENTS_BAD;
    }
    match fronted() {
        Some(f) => {
            // SAFETY: checked non-null; PKCS#11 applications do not write
            // through the list they are given.
            unsafe { *list = std::ptr::from_ref(&f.ours).cast_mut() };
            CKR_OK
        }
        None => CKR_GENERAL_ERROR,
    }
}

/// `C_OpenSession`, then a login if the token is not logged in yet: for
/// applications that decide from the token's flags alone (OpenSSL's
/// PKCS#11 engine).
unsafe extern "C" fn open_session(
    slot: CK_SLOT_ID,
    flags: CK_FLAGS,
    application: *mut std::ffi::c_void,
    notify: CK_NOTIFY,
    session: *mut CK_SESSION_HANDLE,
) -> CK_RV {
    let Some(f) = fronted() else {
        return CKR_GENERAL_ERROR;
    };
    let Some(open) = f.real.C_OpenSession else {
        return CKR_FUNCTION_NOT_SUPPORTED;
    };
    // SAFETY: the caller's arguments, passed on unchanged.
    let rv = unsafe { open(slot, flags, application, notify, session) };
    if rv == CKR_OK && !session.is_null() {
        let mut info = CK_SESSION_INFO::default();
        // SAFETY: the module just wrote the handle; `info` is ours.
        let _ = unsafe { session_info(*session, &mut info) };
    }
    rv
}

/// `C_GetSessionInfo`: what an application asks before it uses a private
/// key ("is this session logged in?"). A session that is not is logged in
/// first, and the question answered again.
unsafe extern "C" fn session_info(session: CK_SESSION_HANDLE, info: *mut CK_SESSION_INFO) -> CK_RV {
    let Some(f) = fronted() else {
        return CKR_GENERAL_ERROR;
    };
    let Some(get) = f.real.C_GetSessionInfo else {
        return CKR_FUNCTION_NOT_SUPPORTED;
    };
    // SAFETY: the caller's arguments, passed on unchanged.
    let rv = unsafe { get(session, info) };
    if rv != CKR_OK || info.is_null() {
        return rv;
    }
    // SAFETY: the module just filled it.
    let state = unsafe { (*info).state };
    if matches!(state, CKS_RO_PUBLIC_SESSION | CKS_RW_PUBLIC_SESSION) && log_in(f, session) {
        // SAFETY: as above.
        return unsafe { get(session, info) };
    }
    rv
}

/// Logs the token of `session` in with the passcode file's passcode,
/// unless there is no usable file or a passcode was refused before;
/// whether it did. Whatever happens, the session stays as it was: one
/// that is not logged in is what the application would have had without
/// this module.
fn log_in(f: &Fronted, session: CK_SESSION_HANDLE) -> bool {
    let Ok(mut refused) = REFUSED.lock() else {
        return false;
    };
    let Some(login) = f.real.C_Login else {
        return false;
    };
    if *refused {
        return false;
    }
    let Some(path) = std::env::var_os("S9CARD_KIOSK_PASSCODE_FILE") else {
        return false;
    };
    let Ok(mut passcode) = read_passcode(Path::new(&path)) else {
        return false;
    };
    let len = passcode.len() as CK_ULONG;
    // SAFETY: the passcode's bytes, `len` of them, live across the call.
    let rv = unsafe { login(session, CKU_USER, passcode.as_mut_ptr(), len) };
    if matches!(
        rv,
        CKR_PIN_INCORRECT | CKR_PIN_INVALID | CKR_PIN_LEN_RANGE | CKR_PIN_LOCKED
    ) {
        *refused = true;
    }
    rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN
}
