//! A key vault on a PKCS#11 token (an HSM, or SoftHSM2 in tests): keeps each document
//! version's DEK and salt as a private token object and destroys it with `C_DestroyObject`.
//!
//! Must never log, print or put into an error the user PIN or any key bytes; errors name
//! the PKCS#11 function and return code (`CKR_...`) and the document, nothing more.
//!
//! # Objects
//!
//! One `CKO_DATA` object per (document, version): `CKA_TOKEN = true`,
//! `CKA_PRIVATE = true` (only visible after `C_Login` as the user; SoftHSM2 encrypts the
//! value of private objects on disk with the token key), `CKA_MODIFIABLE = false`,
//! `CKA_APPLICATION = "carnet-vault"`, `CKA_LABEL = carnet:<hex(document)>:v<version>`,
//! `CKA_VALUE = dek || salt` (64 bytes). A data object rather than a `CKO_SECRET_KEY`
//! because the node has to read the DEK back to run XChaCha20-Poly1305 (not a PKCS#11
//! mechanism); a `CKA_SENSITIVE` secret key could not be read back at all, and a
//! non-sensitive one would promise a protection it does not give.
//!
//! # Sessions
//!
//! PKCS#11 sessions are not thread-safe: a [`TokenSession`] owns one read-write session
//! behind a mutex, and all sessions on one token in this process also share one token lock
//! (see `token_lock`), so calls on a token never overlap. Every call checks that the
//! session is logged in as the user, logs in again after `CKR_USER_NOT_LOGGED_IN`, opens a
//! new session after `CKR_SESSION_HANDLE_INVALID` / `CKR_SESSION_CLOSED`, and retries (at
//! most three attempts). `destroy` looks the object up again afterwards and fails if it is
//! still there.
//!
//! A PKCS#11 module may be initialised only once per process, so modules are loaded
//! through [`module`], which keeps one context per module path for the life of the
//! process (shared by the vault and the [`crate::hsm_signer::Pkcs11Signer`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use carnet_contracts::envelope::DocumentKeys;
use carnet_contracts::DocumentId;
use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use crate::vault::{KeyVault, VaultError};

/// `CKA_APPLICATION` of every vault object: the vault only ever finds its own objects.
pub const VAULT_APPLICATION: &[u8] = b"carnet-vault";

/// Where the user PIN comes from. The PIN itself is never part of a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinSource {
    /// A file holding the PIN (one line; a trailing newline is ignored). Keep it `0400`.
    File(PathBuf),
    /// An environment variable holding the PIN (for containers with secret injection).
    Env(String),
}

impl PinSource {
    /// Reads the PIN. Errors name the file or variable, never the content.
    pub fn read(&self) -> Result<AuthPin, String> {
        let raw = match self {
            PinSource::File(path) => Zeroizing::new(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read the PIN file {}: {e}", path.display()))?,
            ),
            PinSource::Env(var) => Zeroizing::new(
                std::env::var(var)
                    .map_err(|_| format!("environment variable {var} (user PIN) is not set"))?,
            ),
        };
        let pin = raw.trim_end_matches(['\r', '\n']);
        if pin.is_empty() {
            return Err(match self {
                PinSource::File(path) => format!("the PIN file {} is empty", path.display()),
                PinSource::Env(var) => format!("environment variable {var} (user PIN) is empty"),
            });
        }
        Ok(AuthPin::new(pin.to_owned()))
    }
}

/// How to reach one token: module, token label, user PIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pkcs11Config {
    /// Path of the PKCS#11 module, e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// `CKA_LABEL` of the token (as shown by `softhsm2-util --show-slots` / `pkcs11-tool -L`).
    pub token_label: String,
    /// Where the user PIN is read from.
    pub pin: PinSource,
}

/// The PKCS#11 name of a return code, e.g. `CKR_USER_NOT_LOGGED_IN`.
pub fn rv_name(rv: RvError) -> String {
    let camel = format!("{rv:?}");
    let mut out = String::from("CKR");
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// A cryptoki error as one line: the PKCS#11 function and return code, e.g.
/// `C_Login: CKR_PIN_INCORRECT`.
pub fn describe(err: &CkError) -> String {
    match err {
        CkError::Pkcs11(rv, function) => format!("C_{function:?}: {}", rv_name(*rv)),
        CkError::LibraryLoading(e) => format!("cannot load the PKCS#11 module: {e}"),
        other => other.to_string(),
    }
}

fn hsm(context: &str, err: &CkError) -> VaultError {
    VaultError::Hsm(format!("{context}: {}", describe(err)))
}

/// The process-wide context of the module at `path`, loaded and `C_Initialize`d on first
/// use and kept until the process exits.
pub fn module(path: &Path) -> Result<Pkcs11, VaultError> {
    static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut modules = MODULES
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(pkcs11) = modules.get(path) {
        return Ok(pkcs11.clone());
    }
    let pkcs11 = Pkcs11::new(path).map_err(|e| {
        VaultError::Hsm(format!(
            "PKCS#11 module {}: {}",
            path.display(),
            describe(&e)
        ))
    })?;
    match pkcs11.initialize(CInitializeArgs::OsThreads) {
        Ok(()) => {}
        // Someone else in this process initialised the same library: that is fine.
        Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(hsm(&format!("PKCS#11 module {}", path.display()), &e)),
    }
    modules.insert(path.to_path_buf(), pkcs11.clone());
    Ok(pkcs11)
}

/// The slot holding the initialised token labelled `label`.
pub fn find_token(pkcs11: &Pkcs11, label: &str) -> Result<Slot, VaultError> {
    let slots = pkcs11
        .get_slots_with_initialized_token()
        .map_err(|e| hsm("listing token slots", &e))?;
    let mut found = Vec::new();
    for slot in slots {
        let info = pkcs11
            .get_token_info(slot)
            .map_err(|e| hsm("reading token info", &e))?;
        if info.label() == label {
            found.push(slot);
        }
    }
    match found.as_slice() {
        [slot] => Ok(*slot),
        [] => Err(VaultError::Hsm(format!(
            "no initialised token labelled {label:?} in this PKCS#11 module"
        ))),
        _ => Err(VaultError::Hsm(format!(
            "{} tokens are labelled {label:?}; token labels must be unique",
            found.len()
        ))),
    }
}

/// The lock every PKCS#11 call on one token of one module goes through, in this process.
///
/// Serialising per token rather than per session is deliberate: SoftHSM2 2.6.1 (Debian's)
/// returns `CKR_GENERAL_ERROR` from `C_CreateObject` when another session runs
/// `C_FindObjects` at the same moment (SoftHSMv2 issue #573), and the vault's and the
/// signer's load (a few calls per block) does not need parallel sessions.
fn token_lock(module: &Path, slot: Slot) -> Arc<Mutex<()>> {
    type Locks = Mutex<HashMap<(PathBuf, Slot), Arc<Mutex<()>>>>;
    static LOCKS: OnceLock<Locks> = OnceLock::new();
    LOCKS
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .entry((module.to_path_buf(), slot))
        .or_default()
        .clone()
}

/// One logged-in read-write session on one token, safe to share between threads.
pub struct TokenSession {
    pkcs11: Pkcs11,
    slot: Slot,
    token_label: String,
    pin: AuthPin,
    token_lock: Arc<Mutex<()>>,
    session: Mutex<Option<Session>>,
}

impl Drop for TokenSession {
    fn drop(&mut self) {
        // C_CloseSession under the token lock too (SoftHSMv2 issue #464).
        let (_token, mut session) = self.lock();
        drop(session.take());
    }
}

impl std::fmt::Debug for TokenSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSession")
            .field("token_label", &self.token_label)
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

/// What to do after an operation failed.
enum Recovery {
    Login,
    Reopen,
    GiveUp,
}

fn recovery(err: &CkError) -> Recovery {
    match err {
        CkError::Pkcs11(RvError::UserNotLoggedIn, _) => Recovery::Login,
        CkError::Pkcs11(RvError::SessionHandleInvalid | RvError::SessionClosed, _) => {
            Recovery::Reopen
        }
        _ => Recovery::GiveUp,
    }
}

impl TokenSession {
    /// Loads the module, finds the token, reads the PIN, opens a session and logs in.
    pub fn open(config: &Pkcs11Config) -> Result<Self, VaultError> {
        let pkcs11 = module(&config.module)?;
        let slot = find_token(&pkcs11, &config.token_label)?;
        let pin = config.pin.read().map_err(VaultError::Hsm)?;
        let token = TokenSession {
            pkcs11,
            slot,
            token_label: config.token_label.clone(),
            pin,
            token_lock: token_lock(&config.module, slot),
            session: Mutex::new(None),
        };
        {
            let (_token, mut guard) = token.lock();
            token.ensure_session(&mut guard)?;
        }
        Ok(token)
    }

    /// The label of the token this session is on.
    pub fn token_label(&self) -> &str {
        &self.token_label
    }

    /// The token lock, then this session's lock. A panic while holding them cannot leave
    /// a PKCS#11 call half done (each call is one C function), so poisoning is ignored.
    fn lock(&self) -> (MutexGuard<'_, ()>, MutexGuard<'_, Option<Session>>) {
        let token = self
            .token_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let session = self
            .session
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (token, session)
    }

    fn login(&self, session: &Session) -> Result<(), VaultError> {
        match session.login(UserType::User, Some(&self.pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(()),
            Err(e) => Err(hsm(&format!("login to token {:?}", self.token_label), &e)),
        }
    }

    fn logged_in(session: &Session) -> Result<bool, CkError> {
        Ok(matches!(
            session.get_session_info()?.session_state(),
            SessionState::RwUser
        ))
    }

    /// Makes sure `guard` holds a session logged in as the user.
    fn ensure_session<'a>(
        &self,
        guard: &'a mut MutexGuard<'_, Option<Session>>,
    ) -> Result<&'a Session, VaultError> {
        let healthy = match guard.as_ref() {
            None => false,
            Some(session) => match Self::logged_in(session) {
                Ok(true) => true,
                Ok(false) => {
                    self.login(session)?;
                    true
                }
                Err(e) => match recovery(&e) {
                    Recovery::Reopen => false,
                    _ => return Err(hsm("reading session state", &e)),
                },
            },
        };
        if !healthy {
            **guard = None;
            let session = self
                .pkcs11
                .open_rw_session(self.slot)
                .map_err(|e| hsm(&format!("opening a session on {:?}", self.token_label), &e))?;
            self.login(&session)?;
            **guard = Some(session);
        }
        match guard.as_ref() {
            Some(session) => Ok(session),
            None => Err(VaultError::Hsm("no session".into())),
        }
    }

    /// Runs `op` on the logged-in session. Logs in again or reopens the session when the
    /// token says so, and retries; `op` must therefore be safe to repeat. A successful
    /// result is only returned if the session was still logged in afterwards (a logged-out
    /// session sees no private objects and would report them missing).
    pub fn run<T>(
        &self,
        what: &str,
        mut op: impl FnMut(&Session) -> Result<T, CkError>,
    ) -> Result<T, VaultError> {
        const ATTEMPTS: usize = 3;
        let (_token, mut guard) = self.lock();
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let session = self.ensure_session(&mut guard)?;
            match op(session) {
                Ok(value) => match Self::logged_in(session) {
                    Ok(true) => return Ok(value),
                    Ok(false) => continue,
                    Err(e) if matches!(recovery(&e), Recovery::Reopen) => {
                        *guard = None;
                    }
                    Err(e) => return Err(hsm(what, &e)),
                },
                Err(e) => match recovery(&e) {
                    Recovery::Login => last = Some(e),
                    Recovery::Reopen => {
                        *guard = None;
                        last = Some(e);
                    }
                    Recovery::GiveUp => return Err(hsm(what, &e)),
                },
            }
        }
        Err(match last {
            Some(e) => hsm(&format!("{what} (after {ATTEMPTS} attempts)"), &e),
            None => VaultError::Hsm(format!(
                "{what}: the session kept losing its login ({ATTEMPTS} attempts)"
            )),
        })
    }

    /// Logs the session out (tests use it to exercise the re-login path).
    #[cfg(test)]
    pub(crate) fn logout_for_test(&self) {
        let (_token, guard) = self.lock();
        if let Some(session) = guard.as_ref() {
            session.logout().expect("C_Logout");
        }
    }
}

/// The `CKA_LABEL` of the object holding one document version's keys.
pub fn object_label(document: &DocumentId, version: u32) -> String {
    format!("carnet:{}:v{version}", hex::encode(document.0))
}

fn find_template(document: &DocumentId, version: u32) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::DATA),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Application(VAULT_APPLICATION.to_vec()),
        Attribute::Label(object_label(document, version).into_bytes()),
    ]
}

/// Reads `CKA_VALUE` of `object`, in a buffer zeroized when dropped.
fn read_value(session: &Session, object: ObjectHandle) -> Result<Zeroizing<Vec<u8>>, CkError> {
    let attributes = session.get_attributes(object, &[AttributeType::Value])?;
    let mut value = Zeroizing::new(Vec::new());
    for attribute in attributes {
        if let Attribute::Value(mut bytes) = attribute {
            value.extend_from_slice(&bytes);
            zeroize::Zeroize::zeroize(&mut bytes);
        }
    }
    Ok(value)
}

/// A [`KeyVault`] on a PKCS#11 token. See the module documentation for the object layout.
#[derive(Debug)]
pub struct Pkcs11Vault {
    token: TokenSession,
}

impl Pkcs11Vault {
    /// Opens the vault on the token named in `config` and logs in.
    pub fn open(config: &Pkcs11Config) -> Result<Self, VaultError> {
        Ok(Self {
            token: TokenSession::open(config)?,
        })
    }

    /// The session (tests use it to exercise the re-login path).
    #[cfg(test)]
    pub(crate) fn token(&self) -> &TokenSession {
        &self.token
    }
}

impl KeyVault for Pkcs11Vault {
    fn put(
        &self,
        document: &DocumentId,
        version: u32,
        keys: &DocumentKeys,
    ) -> Result<(), VaultError> {
        let what = format!("storing the keys of {document} v{version}");
        let value = keys.to_bytes();
        self.token.run(&what, |session| {
            let existing = session.find_objects(&find_template(document, version))?;
            // Idempotent: the same keys already there is success, nothing is written.
            if let [object] = existing.as_slice() {
                if read_value(session, *object)?.as_slice() == &value[..] {
                    return Ok(());
                }
            }
            // Otherwise the new keys replace whatever was there (like the RocksDB vault):
            // create first, then destroy the old objects, so a failure leaves keys behind.
            let mut template = find_template(document, version);
            template.push(Attribute::Modifiable(false));
            template.push(Attribute::Value(value.to_vec()));
            let created = session.create_object(&template);
            // The template's copy of the keys is plain heap memory: wipe it now.
            for attribute in &mut template {
                if let Attribute::Value(bytes) = attribute {
                    zeroize::Zeroize::zeroize(bytes);
                }
            }
            created?;
            for object in existing {
                session.destroy_object(object)?;
            }
            Ok(())
        })
    }

    fn get(&self, document: &DocumentId, version: u32) -> Result<Option<DocumentKeys>, VaultError> {
        let what = format!("reading the keys of {document} v{version}");
        let value = self.token.run(&what, |session| {
            match session
                .find_objects(&find_template(document, version))?
                .first()
            {
                Some(object) => read_value(session, *object).map(Some),
                None => Ok(None),
            }
        })?;
        match value {
            None => Ok(None),
            Some(value) => DocumentKeys::from_bytes(&value)
                .map(Some)
                .map_err(|_| VaultError::Malformed(format!("{document} v{version}"))),
        }
    }

    fn destroy(&self, document: &DocumentId, version: u32) -> Result<(), VaultError> {
        let what = format!("destroying the keys of {document} v{version}");
        let left = self.token.run(&what, |session| {
            for object in session.find_objects(&find_template(document, version))? {
                match session.destroy_object(object) {
                    // Destroyed by a previous attempt of this very call: fine.
                    Ok(()) | Err(CkError::Pkcs11(RvError::ObjectHandleInvalid, _)) => {}
                    Err(e) => return Err(e),
                }
            }
            // Some tokens drop the handle before the object is really gone (SoftHSMv2
            // issue #903): look again rather than trust the return code.
            Ok(session
                .find_objects(&find_template(document, version))?
                .len())
        })?;
        match left {
            0 => Ok(()),
            n => Err(VaultError::Hsm(format!(
                "{what}: {n} object(s) still on the token after C_DestroyObject"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_pkcs11_names_return_codes_like_the_standard() {
        assert_eq!(rv_name(RvError::UserNotLoggedIn), "CKR_USER_NOT_LOGGED_IN");
        assert_eq!(rv_name(RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(
            rv_name(RvError::ObjectHandleInvalid),
            "CKR_OBJECT_HANDLE_INVALID"
        );
        let err = CkError::Pkcs11(RvError::PinIncorrect, cryptoki::context::Function::Login);
        assert_eq!(describe(&err), "C_Login: CKR_PIN_INCORRECT");
    }

    #[test]
    fn vault_pkcs11_pin_errors_never_show_the_pin() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pin");
        std::fs::write(&empty, "\n").unwrap();
        let err = PinSource::File(empty).read().unwrap_err();
        assert!(err.contains("empty"), "{err}");
        let err = PinSource::Env("CARNET_TEST_PIN_THAT_IS_NOT_SET".into())
            .read()
            .unwrap_err();
        assert!(err.contains("CARNET_TEST_PIN_THAT_IS_NOT_SET"), "{err}");
        let file = dir.path().join("user.pin");
        std::fs::write(&file, "s3cret-pin\n").unwrap();
        let pin = PinSource::File(file).read().unwrap();
        assert!(!format!("{pin:?}").contains("s3cret"));
    }
}
