//! The behaviour suite every [`KeyVault`] backend must pass, written once and run against
//! [`RocksVault`] (in a temporary store) and [`Pkcs11Vault`] (on a fresh SoftHSM2 token
//! made by the tests), plus the SoftHSM2-only tests: nothing of a destroyed key left in
//! the token directory, re-login, PKCS#11 error names, and the HSM validator signer.
//!
//! Must never skip a backend: without SoftHSM2 the HSM tests fail and say how to install
//! it. Must never print key bytes or PINs, not even in assertion messages.

use std::path::{Path, PathBuf};
use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use carnet_consensus::Signer;
use carnet_contracts::envelope::DocumentKeys;
use carnet_contracts::DocumentId;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use tempfile::TempDir;

use crate::hsm_signer::Pkcs11Signer;
use crate::storage::Store;
use crate::vault::{KeyVault, RocksVault, VaultError};
use crate::vault_pkcs11::{self, PinSource, Pkcs11Config, Pkcs11Vault, TokenSession};

// ---------------------------------------------------------------------------------------
// The suite, generic over a backend.

/// Opens a vault over the same backing storage each time (so "reopen" means something).
trait VaultFactory {
    fn open(&self) -> Box<dyn KeyVault>;
}

fn fresh_id() -> DocumentId {
    DocumentId(rand::random())
}

fn fresh_keys() -> DocumentKeys {
    DocumentKeys {
        dek: rand::random(),
        salt: rand::random(),
    }
}

/// Compares without printing key bytes on failure.
fn assert_holds(vault: &dyn KeyVault, id: &DocumentId, version: u32, keys: &DocumentKeys) {
    let got = vault.get(id, version).expect("get");
    assert!(got.is_some(), "keys of {id} v{version} are missing");
    assert!(got.as_ref() == Some(keys), "keys of {id} v{version} differ");
}

fn assert_absent(vault: &dyn KeyVault, id: &DocumentId, version: u32) {
    let got = vault.get(id, version).expect("get");
    assert!(got.is_none(), "keys of {id} v{version} are still there");
}

fn put_get_roundtrip(factory: &dyn VaultFactory) {
    let vault = factory.open();
    let (id, keys) = (fresh_id(), fresh_keys());
    vault.put(&id, 1, &keys).unwrap();
    assert_holds(&*vault, &id, 1, &keys);
}

fn get_unknown_is_none(factory: &dyn VaultFactory) {
    let vault = factory.open();
    let id = fresh_id();
    assert_absent(&*vault, &id, 1);
    vault.put(&id, 1, &fresh_keys()).unwrap();
    assert_absent(&*vault, &id, 2);
    assert_absent(&*vault, &fresh_id(), 1);
}

fn put_is_idempotent(factory: &dyn VaultFactory) {
    let vault = factory.open();
    let (id, keys) = (fresh_id(), fresh_keys());
    vault.put(&id, 1, &keys).unwrap();
    vault.put(&id, 1, &keys).unwrap();
    assert_holds(&*vault, &id, 1, &keys);
    // A second put with other keys replaces the first (same as the RocksDB vault).
    let other = fresh_keys();
    vault.put(&id, 1, &other).unwrap();
    assert_holds(&*vault, &id, 1, &other);
    // And one destroy removes it all.
    vault.destroy(&id, 1).unwrap();
    assert_absent(&*vault, &id, 1);
}

fn destroy_then_get_is_none(factory: &dyn VaultFactory) {
    let vault = factory.open();
    let (id, keys) = (fresh_id(), fresh_keys());
    vault.put(&id, 1, &keys).unwrap();
    vault.destroy(&id, 1).unwrap();
    assert_absent(&*vault, &id, 1);
    vault.destroy(&id, 1).unwrap();
    assert_absent(&*vault, &id, 1);
}

fn destroy_unknown_is_ok(factory: &dyn VaultFactory) {
    let vault = factory.open();
    vault.destroy(&fresh_id(), 1).unwrap();
    vault.destroy(&fresh_id(), u32::MAX).unwrap();
}

fn versions_are_independent(factory: &dyn VaultFactory) {
    let vault = factory.open();
    let (id, other_doc) = (fresh_id(), fresh_id());
    let keys: Vec<DocumentKeys> = (0..3).map(|_| fresh_keys()).collect();
    for (version, k) in (1u32..).zip(&keys) {
        vault.put(&id, version, k).unwrap();
    }
    let other_keys = fresh_keys();
    vault.put(&other_doc, 2, &other_keys).unwrap();
    vault.destroy(&id, 2).unwrap();
    assert_holds(&*vault, &id, 1, &keys[0]);
    assert_absent(&*vault, &id, 2);
    assert_holds(&*vault, &id, 3, &keys[2]);
    assert_holds(&*vault, &other_doc, 2, &other_keys);
}

fn concurrent_puts_from_threads(factory: &dyn VaultFactory) {
    const THREADS: usize = 8;
    const PER_THREAD: u32 = 6;
    let vault = factory.open();
    let shared = (fresh_id(), fresh_keys());
    let written: Vec<Vec<(DocumentId, DocumentKeys)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|_| {
                let vault = &*vault;
                let shared = &shared;
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    for version in 1..=PER_THREAD {
                        let (id, keys) = (fresh_id(), fresh_keys());
                        vault.put(&id, version, &keys).unwrap();
                        // Every thread also writes the same entry: a race of idempotent puts.
                        vault.put(&shared.0, 1, &shared.1).unwrap();
                        mine.push((id, keys));
                    }
                    mine
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (thread, entries) in written.iter().enumerate() {
        assert_eq!(entries.len(), PER_THREAD as usize, "thread {thread}");
        for ((id, keys), version) in entries.iter().zip(1..) {
            assert_holds(&*vault, id, version, keys);
        }
    }
    assert_holds(&*vault, &shared.0, 1, &shared.1);
    vault.destroy(&shared.0, 1).unwrap();
    assert_absent(&*vault, &shared.0, 1);
}

fn keys_survive_reopen(factory: &dyn VaultFactory) {
    let (id, kept, destroyed) = (fresh_id(), fresh_keys(), fresh_keys());
    {
        let vault = factory.open();
        vault.put(&id, 1, &kept).unwrap();
        vault.put(&id, 2, &destroyed).unwrap();
        vault.destroy(&id, 2).unwrap();
    }
    let vault = factory.open();
    assert_holds(&*vault, &id, 1, &kept);
    assert_absent(&*vault, &id, 2);
}

fn put_batch_stores_every_version_durably(factory: &dyn VaultFactory) {
    let batch: Vec<(DocumentId, u32, DocumentKeys)> =
        (0..5).map(|v| (fresh_id(), v + 1, fresh_keys())).collect();
    {
        let vault = factory.open();
        vault.put_batch(&batch).unwrap();
        // Idempotent, like `put`.
        vault.put_batch(&batch[..2]).unwrap();
        vault.put_batch(&[]).unwrap();
    }
    let vault = factory.open();
    for (id, version, keys) in &batch {
        assert_holds(&*vault, id, *version, keys);
    }
    vault.destroy(&batch[0].0, batch[0].1).unwrap();
    assert_absent(&*vault, &batch[0].0, batch[0].1);
    assert_holds(&*vault, &batch[1].0, batch[1].1, &batch[1].2);
}

macro_rules! vault_suite {
    ($backend:ident, $factory:expr) => {
        mod $backend {
            use super::*;

            #[test]
            fn put_get_roundtrip() {
                super::put_get_roundtrip(&$factory);
            }
            #[test]
            fn get_unknown_is_none() {
                super::get_unknown_is_none(&$factory);
            }
            #[test]
            fn put_is_idempotent() {
                super::put_is_idempotent(&$factory);
            }
            #[test]
            fn destroy_then_get_is_none() {
                super::destroy_then_get_is_none(&$factory);
            }
            #[test]
            fn destroy_unknown_is_ok() {
                super::destroy_unknown_is_ok(&$factory);
            }
            #[test]
            fn versions_are_independent() {
                super::versions_are_independent(&$factory);
            }
            #[test]
            fn concurrent_puts_from_threads() {
                super::concurrent_puts_from_threads(&$factory);
            }
            #[test]
            fn keys_survive_reopen() {
                super::keys_survive_reopen(&$factory);
            }
            #[test]
            fn put_batch_stores_every_version_durably() {
                super::put_batch_stores_every_version_durably(&$factory);
            }
        }
    };
}

// ---------------------------------------------------------------------------------------
// RocksDB backend.

struct RocksFactory {
    dir: TempDir,
}

fn rocks_factory() -> RocksFactory {
    RocksFactory {
        dir: tempfile::tempdir().unwrap(),
    }
}

impl VaultFactory for RocksFactory {
    fn open(&self) -> Box<dyn KeyVault> {
        Box::new(RocksVault::new(Store::open(self.dir.path()).unwrap()))
    }
}

vault_suite!(rocksdb, rocks_factory());

// ---------------------------------------------------------------------------------------
// SoftHSM2 backend: one token for the whole test process.

const TOKEN_LABEL: &str = "carnet-test";
const SO_PIN: &str = "carnet-test-so-pin";
const USER_PIN: &str = "carnet-test-user-pin";

/// Where SoftHSM2 is looked for; `CARNET_TEST_PKCS11_MODULE` overrides.
const SOFTHSM2_MODULES: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
];

struct SoftHsm {
    _dir: TempDir,
    token_dir: PathBuf,
    config: Pkcs11Config,
}

fn find_softhsm2() -> Result<PathBuf, String> {
    let candidates: Vec<PathBuf> = match std::env::var_os("CARNET_TEST_PKCS11_MODULE") {
        Some(path) => vec![PathBuf::from(path)],
        None => SOFTHSM2_MODULES.iter().map(PathBuf::from).collect(),
    };
    candidates
        .iter()
        .find(|path| path.exists())
        .cloned()
        .ok_or_else(|| {
            format!(
                "SoftHSM2 is not installed (no PKCS#11 module at {candidates:?}); the PKCS#11 \
                 vault tests need it: `apt-get install softhsm2`, or run scripts/install-deps.sh \
                 (or set CARNET_TEST_PKCS11_MODULE to the module's path)"
            )
        })
}

const TOKEN_DIR_PREFIX: &str = "carnet-softhsm-test-";

/// Removes the token directories of earlier test processes that have exited (Linux only:
/// it asks /proc whether the process is still there).
fn remove_stale_token_dirs() {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TOKEN_DIR_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn init_softhsm() -> Result<SoftHsm, String> {
    let module = find_softhsm2()?;
    remove_stale_token_dirs();
    // Lives in a static, so never dropped: named after this process, so that the next run
    // can remove it (`remove_stale_token_dirs`).
    let dir = tempfile::Builder::new()
        .prefix(&format!("{TOKEN_DIR_PREFIX}{}-", std::process::id()))
        .tempdir()
        .map_err(|e| e.to_string())?;
    let token_dir = dir.path().join("tokens");
    std::fs::create_dir(&token_dir).map_err(|e| e.to_string())?;
    let conf = dir.path().join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            token_dir.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    // Read by SoftHSM2 in C_Initialize, which `vault_pkcs11::module` calls just below, once.
    std::env::set_var("SOFTHSM2_CONF", &conf);
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("SoftHSM2 set-up, {what}: {e}");
    let pkcs11 = vault_pkcs11::module(&module).map_err(|e| fail("loading the module", &e))?;
    let slots = pkcs11
        .get_slots_with_token()
        .map_err(|e| fail("listing slots", &e))?;
    let free = slots
        .into_iter()
        .find(|slot| {
            pkcs11
                .get_token_info(*slot)
                .map(|info| !info.token_initialized())
                .unwrap_or(false)
        })
        .ok_or_else(|| "SoftHSM2 set-up: no free slot".to_string())?;
    let so_pin = AuthPin::new(SO_PIN.into());
    pkcs11
        .init_token(free, &so_pin, TOKEN_LABEL)
        .map_err(|e| fail("C_InitToken", &vault_pkcs11::describe(&e)))?;
    // SoftHSM2 renumbers the slot of a freshly initialised token: look it up by label.
    let slot = vault_pkcs11::find_token(&pkcs11, TOKEN_LABEL)
        .map_err(|e| fail("finding the token", &e))?;
    let session = pkcs11
        .open_rw_session(slot)
        .map_err(|e| fail("C_OpenSession", &vault_pkcs11::describe(&e)))?;
    session
        .login(UserType::So, Some(&so_pin))
        .map_err(|e| fail("C_Login as SO", &vault_pkcs11::describe(&e)))?;
    session
        .init_pin(&AuthPin::new(USER_PIN.into()))
        .map_err(|e| fail("C_InitPIN", &vault_pkcs11::describe(&e)))?;
    session
        .logout()
        .map_err(|e| fail("C_Logout", &vault_pkcs11::describe(&e)))?;
    drop(session);
    let pin_file = dir.path().join("user.pin");
    std::fs::write(&pin_file, format!("{USER_PIN}\n")).map_err(|e| e.to_string())?;
    Ok(SoftHsm {
        _dir: dir,
        token_dir,
        config: Pkcs11Config {
            module,
            token_label: TOKEN_LABEL.into(),
            pin: PinSource::File(pin_file),
        },
    })
}

fn softhsm() -> &'static SoftHsm {
    static SOFTHSM: OnceLock<Result<SoftHsm, String>> = OnceLock::new();
    match SOFTHSM.get_or_init(init_softhsm) {
        Ok(softhsm) => softhsm,
        Err(message) => panic!("{message}"),
    }
}

/// HSM tests share the token; the few that need it to themselves (byte scan of the token
/// directory, logout, wrong PIN) take this lock exclusively, all others shared.
static TOKEN_USE: RwLock<()> = RwLock::new(());

fn shared_token() -> RwLockReadGuard<'static, ()> {
    TOKEN_USE
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn exclusive_token() -> RwLockWriteGuard<'static, ()> {
    TOKEN_USE
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct HsmFactory {
    config: &'static Pkcs11Config,
    _shared: RwLockReadGuard<'static, ()>,
}

fn hsm_factory() -> HsmFactory {
    let config = &softhsm().config;
    HsmFactory {
        config,
        _shared: shared_token(),
    }
}

impl VaultFactory for HsmFactory {
    fn open(&self) -> Box<dyn KeyVault> {
        Box::new(Pkcs11Vault::open(self.config).unwrap())
    }
}

vault_suite!(softhsm2, hsm_factory());

/// Every file under `dir` and whether any contains one of `needles`.
fn files_containing(dir: &Path, needles: &[&[u8]]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                pending.push(entry.unwrap().path());
            }
        } else if let Ok(bytes) = std::fs::read(&path) {
            if needles
                .iter()
                .any(|needle| bytes.windows(needle.len()).any(|w| w == *needle))
            {
                hits.push(path);
            }
        }
    }
    hits
}

fn object_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                pending.push(entry.unwrap().path());
            }
        } else if path.extension().is_some_and(|ext| ext == "object") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The private objects of the vault matching `template`, counted on a session of our own.
fn count_objects(template: &[Attribute]) -> usize {
    let token = TokenSession::open(&softhsm().config).unwrap();
    token
        .run("counting objects", |session| session.find_objects(template))
        .unwrap()
        .len()
}

mod softhsm2_token {
    use super::*;

    #[test]
    fn destroy_leaves_no_key_bytes_in_the_token_directory() {
        let softhsm = softhsm();
        let _exclusive = exclusive_token();
        let vault = Pkcs11Vault::open(&softhsm.config).unwrap();
        let (id, keys) = (fresh_id(), fresh_keys());
        let before = object_files(&softhsm.token_dir);
        vault.put(&id, 1, &keys).unwrap();
        let with_key = object_files(&softhsm.token_dir);
        let added: Vec<_> = with_key.iter().filter(|f| !before.contains(f)).collect();
        assert_eq!(added.len(), 1, "put stores exactly one token object file");
        assert_holds(&vault, &id, 1, &keys);

        vault.destroy(&id, 1).unwrap();
        assert_absent(&vault, &id, 1);
        assert!(
            !added[0].exists(),
            "C_DestroyObject removed the object file"
        );
        assert_eq!(object_files(&softhsm.token_dir), before);
        let hits = files_containing(&softhsm.token_dir, &[&keys.dek, &keys.salt]);
        assert!(hits.is_empty(), "DEK or salt bytes found in {hits:?}");
    }

    #[test]
    fn put_twice_keeps_one_object() {
        let _shared = shared_token();
        let vault = Pkcs11Vault::open(&softhsm().config).unwrap();
        let (id, keys) = (fresh_id(), fresh_keys());
        vault.put(&id, 7, &keys).unwrap();
        vault.put(&id, 7, &keys).unwrap();
        vault.put(&id, 7, &fresh_keys()).unwrap();
        let template = vec![
            Attribute::Class(ObjectClass::DATA),
            Attribute::Label(vault_pkcs11::object_label(&id, 7).into_bytes()),
        ];
        assert_eq!(count_objects(&template), 1);
        vault.destroy(&id, 7).unwrap();
        assert_eq!(count_objects(&template), 0);
    }

    #[test]
    fn logs_in_again_after_a_logout() {
        let _exclusive = exclusive_token();
        let vault = Pkcs11Vault::open(&softhsm().config).unwrap();
        let (id, keys) = (fresh_id(), fresh_keys());
        vault.put(&id, 1, &keys).unwrap();
        vault.token().logout_for_test();
        assert_holds(&vault, &id, 1, &keys);
        vault.token().logout_for_test();
        vault.destroy(&id, 1).unwrap();
        vault.token().logout_for_test();
        assert_absent(&vault, &id, 1);
    }

    #[test]
    fn wrong_pin_is_named_and_not_shown() {
        let softhsm = softhsm();
        let _exclusive = exclusive_token();
        let var = "CARNET_TEST_WRONG_VAULT_PIN";
        std::env::set_var(var, "not-the-pin-4711");
        let config = Pkcs11Config {
            pin: PinSource::Env(var.into()),
            ..softhsm.config.clone()
        };
        let err = Pkcs11Vault::open(&config).unwrap_err();
        std::env::remove_var(var);
        let message = err.to_string();
        assert!(matches!(err, VaultError::Hsm(_)), "{message}");
        assert!(message.contains("C_Login: CKR_PIN_INCORRECT"), "{message}");
        assert!(!message.contains("not-the-pin"), "{message}");
    }

    #[test]
    fn unknown_token_label_is_named() {
        let config = Pkcs11Config {
            token_label: "no-such-token".into(),
            ..softhsm().config.clone()
        };
        let message = Pkcs11Vault::open(&config).unwrap_err().to_string();
        assert!(message.contains("\"no-such-token\""), "{message}");
    }

    #[test]
    fn missing_module_is_an_hsm_error() {
        let config = Pkcs11Config {
            module: PathBuf::from("/nonexistent/libpkcs11.so"),
            ..softhsm().config.clone()
        };
        let message = Pkcs11Vault::open(&config).unwrap_err().to_string();
        assert!(message.contains("/nonexistent/libpkcs11.so"), "{message}");
    }

    #[test]
    fn validator_key_signs_and_verifies() {
        let _shared = shared_token();
        let config = &softhsm().config;
        let label = format!("validator-{}", hex::encode(rand::random::<[u8; 4]>()));
        let signer = Pkcs11Signer::generate_or_load(config, &label, 3).unwrap();
        assert_eq!(signer.index(), 3);
        let public = signer.public_key();
        let message = b"carnet/vote/v1 notarize view 12";
        let signature = signer.sign(message).unwrap();
        public.verify_strict(message, &signature).unwrap();
        assert!(public
            .verify_strict(b"another message", &signature)
            .is_err());
        // Ed25519 is deterministic.
        assert_eq!(signer.sign(message).unwrap(), signature);

        // Loading again finds the same key rather than making a new one.
        let again = Pkcs11Signer::generate_or_load(config, &label, 3).unwrap();
        assert_eq!(again.public_key(), public);
        public
            .verify_strict(b"second", &again.sign(b"second").unwrap())
            .unwrap();

        // Signing from several threads through one signer.
        std::thread::scope(|scope| {
            for n in 0..4u8 {
                let signer = &signer;
                scope.spawn(move || {
                    let message = [n; 40];
                    public
                        .verify_strict(&message, &signer.sign(&message).unwrap())
                        .unwrap();
                });
            }
        });
    }

    #[test]
    fn validator_private_key_never_leaves_the_token() {
        let _shared = shared_token();
        let config = &softhsm().config;
        let label = format!("validator-{}", hex::encode(rand::random::<[u8; 4]>()));
        Pkcs11Signer::generate_or_load(config, &label, 0).unwrap();
        let token = TokenSession::open(config).unwrap();
        let template = vec![
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(label.into_bytes()),
        ];
        let (flags, value) = token
            .run("inspecting the private key", |session| {
                let [key] = session.find_objects(&template)?[..] else {
                    panic!("expected one private key");
                };
                let flags = session.get_attributes(
                    key,
                    &[
                        AttributeType::Sensitive,
                        AttributeType::Extractable,
                        AttributeType::Token,
                    ],
                )?;
                let value = session.get_attributes(key, &[AttributeType::Value])?;
                Ok((flags, value))
            })
            .unwrap();
        assert!(flags.contains(&Attribute::Sensitive(true)), "{flags:?}");
        assert!(flags.contains(&Attribute::Extractable(false)), "{flags:?}");
        assert!(flags.contains(&Attribute::Token(true)), "{flags:?}");
        assert!(
            value.is_empty(),
            "CKA_VALUE of the private key was readable"
        );
    }
}
