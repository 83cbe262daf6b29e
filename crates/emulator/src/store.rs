//! The local cloud's persistent resource store: one JSON file per resource under
//! `<project>/.lifeboat/cloud/resources/`, written atomically (temp file + rename)
//! so a crash never leaves a half-written resource.
//!
//! Owns the on-disk format only. It never decides what a resource should look like.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use lifeboat_core::id::ResourceId;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("local cloud store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("local cloud store {path}: corrupt resource file: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// Log shipping of an emulated SQL Server VM (see `sql`): persisted with the VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipping {
    /// Wall-clock ms when shipping began (the VM's creation).
    pub since_ms: u64,
    /// Wall-clock ms when the database was recovered (restores stopped).
    pub recovered_ms: Option<u64>,
}

/// A resource as the cloud holds it: what a GET returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredResource {
    pub id: ResourceId,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub api_version: String,
    pub body: Value,
    /// The resource's latest operation; its state is a function of this and the
    /// clock, so nothing has to run in the background (and a restart loses nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
    /// VM power state (`running`, `deallocated`, ...), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<String>,
    /// Emulated SQL Server restore mode of a SQL VM (`norecovery`, `standby`, `recovery`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_mode: Option<String>,
    /// Log shipping into a SQL VM: when it began and, once the database was
    /// recovered read-write, when restores stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping: Option<Shipping>,
    /// Not visible before this wall-clock time (an image version appears when its
    /// build finishes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible_from_ms: Option<u64>,
    /// When replication to every target region completes (image versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicated_ms: Option<u64>,
    /// Resource Graph's view of this resource while its latest write is not yet
    /// indexed: absent means indexed as it is now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub indexing: Option<Indexing>,
}

/// A write Resource Graph has not indexed yet: until `at_ms` its row is
/// `previous` (the resource as it was before the write; `None`: no row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Indexing {
    pub at_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<Value>,
}

impl StoredResource {
    /// A new resource of `resource_type` at `id` with `body`, nothing running.
    pub fn new(id: ResourceId, resource_type: String, api_version: String, body: Value) -> Self {
        StoredResource {
            id,
            resource_type,
            api_version,
            body,
            operation: None,
            power: None,
            sql_mode: None,
            shipping: None,
            visible_from_ms: None,
            replicated_ms: None,
            indexing: None,
        }
    }
}

/// What the operation does when it completes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum OpKind {
    Put {
        creating: bool,
    },
    Delete,
    /// A POST action; `power` is the VM power state it leaves.
    Action {
        name: String,
        power: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<Value>,
    },
}

/// A long-running operation on one resource, in wall-clock milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    pub id: String,
    #[serde(flatten)]
    pub kind: OpKind,
    pub started_ms: u64,
    pub done_ms: u64,
    /// `(code, message)` when the operation is set to fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<(String, String)>,
}

pub struct Store {
    dir: PathBuf,
    /// Every resource, parsed, as of `changes.log` offset `.1`: Resource Graph,
    /// Log Analytics and collection reads use it, and a fleet is 20,000 files.
    /// It is read from disk once; after that it catches up by reloading only the
    /// resources the change log names (see [`Store::snapshot`]).
    scanned: std::sync::Mutex<Option<(std::sync::Arc<Snapshot>, u64)>>,
}

/// Every stored resource at one moment, by lower-cased id (so a parent's
/// descendants are one range).
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    by_key: std::collections::BTreeMap<String, std::sync::Arc<StoredResource>>,
}

impl Snapshot {
    /// Every resource, sorted by id.
    pub fn iter(&self) -> impl Iterator<Item = &StoredResource> {
        self.by_key.values().map(|r| r.as_ref())
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    pub fn get(&self, id: &ResourceId) -> Option<&StoredResource> {
        self.by_key.get(id.key()).map(|r| r.as_ref())
    }

    /// Every resource, sorted by id, shared (kept by a paged read).
    pub fn shared(&self) -> impl Iterator<Item = &std::sync::Arc<StoredResource>> {
        self.by_key.values()
    }

    /// The direct children of `parent`, sorted by id (what
    /// [`Store::children`] reads from disk).
    pub fn children(&self, parent: &ResourceId) -> Vec<StoredResource> {
        self.children_shared(parent)
            .into_iter()
            .map(|r| r.as_ref().clone())
            .collect()
    }

    /// [`Snapshot::children`], shared.
    pub fn children_shared(&self, parent: &ResourceId) -> Vec<&std::sync::Arc<StoredResource>> {
        let prefix = format!("{}/", parent.key());
        self.by_key
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(_, r)| Store::indexed_parent(&r.id).as_ref() == Some(parent))
            .map(|(_, r)| r)
            .collect()
    }
}

impl Store {
    /// The store of the project at `root`.
    pub fn for_project(root: &Path) -> Store {
        Store::at(root.join(".lifeboat").join("cloud"))
    }

    pub fn at(dir: PathBuf) -> Store {
        Store {
            dir,
            scanned: std::sync::Mutex::new(None),
        }
    }

    /// `<dir>/changes.log`: the id of every resource written or deleted, a line
    /// each, appended (`O_APPEND`, one `write` per line) after the change is on
    /// disk. Every process sharing the directory catches up from it.
    fn change_log(&self) -> PathBuf {
        self.dir.join("changes.log")
    }

    fn log_change(&self, id: &ResourceId) -> Result<(), StoreError> {
        use std::io::Write;
        let path = self.change_log();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(Self::io(&path))?;
        f.write_all(format!("{}\n", id.as_str()).as_bytes())
            .map_err(Self::io(&path))
    }

    fn log_len(&self) -> u64 {
        std::fs::metadata(self.change_log()).map_or(0, |m| m.len())
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn resources_dir(&self) -> PathBuf {
        self.dir.join("resources")
    }

    fn vault_dir(&self) -> PathBuf {
        self.dir.join("vault")
    }

    /// `<dir>/children/<parent digest>/`: one marker per child resource, so a
    /// parent's GET finds its children without scanning the store.
    fn children_dir(&self, parent: &ResourceId) -> PathBuf {
        let digest = Sha256::digest(parent.key().as_bytes());
        self.dir
            .join("children")
            .join(lifeboat_core::id::hex(&digest[..16]))
    }

    /// Children are indexed under resources, not under groups or subscriptions.
    fn indexed_parent(id: &ResourceId) -> Option<ResourceId> {
        id.parent().filter(|p| p.as_str().matches('/').count() > 4)
    }

    /// The stored children of `parent` (direct ones), sorted by id.
    pub fn children(&self, parent: &ResourceId) -> Result<Vec<StoredResource>, StoreError> {
        let dir = self.children_dir(parent);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Self::io(&dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let path = entry.map_err(Self::io(&dir))?.path();
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue; // removed meanwhile
            };
            if let Ok(id) = ResourceId::parse(text.trim())
                && let Some(r) = self.get(&id)?
            {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// `<dir>/<sha-256 prefix of the id>.json`.
    fn file_in(dir: &Path, id: &ResourceId) -> PathBuf {
        let digest = Sha256::digest(id.key().as_bytes());
        dir.join(format!("{}.json", lifeboat_core::id::hex(&digest[..16])))
    }

    fn file_for(&self, id: &ResourceId) -> PathBuf {
        Self::file_in(&self.resources_dir(), id)
    }

    /// Write atomically: a reader sees the old or the new file, never a mix.
    fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(Self::io(dir))?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, bytes).map_err(Self::io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(Self::io(path))
    }

    /// Every `*.json` in `dir`, parsed; an absent directory is empty.
    fn read_all<T: serde::de::DeserializeOwned>(dir: &Path) -> Result<Vec<T>, StoreError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Self::io(dir)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let path = entry.map_err(Self::io(dir))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(Self::io(&path))?;
            out.push(
                serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
                    path: path.clone(),
                    source,
                })?,
            );
        }
        Ok(out)
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
        move |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Every stored resource, sorted by id. An absent store is an empty cloud.
    pub fn list(&self) -> Result<Vec<StoredResource>, StoreError> {
        Ok(self.scan()?.iter().cloned().collect())
    }

    /// Every stored resource now, shared. The first call reads the directory;
    /// later ones reload only what the change log names since (this process's
    /// writes and any other's), so a read costs what changed, not the fleet.
    pub fn scan(&self) -> Result<std::sync::Arc<Snapshot>, StoreError> {
        let mut cache = self.scanned.lock().expect("scan cache");
        // The offset is taken before reading: a change that lands meanwhile is
        // replayed on the next call (reloading is idempotent).
        let len = self.log_len();
        let (snap, offset) = match cache.take() {
            Some((snap, offset)) if offset <= len => (snap, offset),
            _ => {
                let mut snap = Snapshot::default();
                for r in Self::read_all::<StoredResource>(&self.resources_dir())? {
                    snap.by_key
                        .insert(r.id.key().to_string(), std::sync::Arc::new(r));
                }
                *cache = Some((std::sync::Arc::new(snap), len));
                return Ok(cache.as_ref().expect("just set").0.clone());
            }
        };
        if offset == len {
            *cache = Some((snap.clone(), offset));
            return Ok(snap);
        }
        let tail = {
            use std::io::{Read, Seek};
            let path = self.change_log();
            let mut f = std::fs::File::open(&path).map_err(Self::io(&path))?;
            f.seek(std::io::SeekFrom::Start(offset))
                .map_err(Self::io(&path))?;
            let mut buf = Vec::new();
            f.take(len - offset)
                .read_to_end(&mut buf)
                .map_err(Self::io(&path))?;
            buf
        };
        // Only whole lines: a line still being appended is read next time.
        let whole = tail.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let mut next = std::sync::Arc::unwrap_or_clone(snap);
        let mut seen = std::collections::HashSet::new();
        for line in String::from_utf8_lossy(&tail[..whole]).lines() {
            let Ok(id) = ResourceId::parse(line.trim()) else {
                continue;
            };
            if !seen.insert(id.key().to_string()) {
                continue;
            }
            match self.get(&id)? {
                Some(r) => {
                    next.by_key
                        .insert(id.key().to_string(), std::sync::Arc::new(r));
                }
                None => {
                    next.by_key.remove(id.key());
                }
            }
        }
        let next = std::sync::Arc::new(next);
        *cache = Some((next.clone(), offset + whole as u64));
        Ok(next)
    }

    pub fn get(&self, id: &ResourceId) -> Result<Option<StoredResource>, StoreError> {
        let path = self.file_for(id);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| StoreError::Corrupt { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Self::io(&path)(e)),
        }
    }

    /// Write atomically: a reader sees the old or the new resource, never a mix.
    pub fn put(&self, r: &StoredResource) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(r).expect("a JSON value serializes");
        Self::write_atomic(&self.file_for(&r.id), &bytes)?;
        if let Some(parent) = Self::indexed_parent(&r.id) {
            let marker = Self::file_in(&self.children_dir(&parent), &r.id);
            if !marker.exists() {
                Self::write_atomic(&marker, r.id.as_str().as_bytes())?;
            }
        }
        self.log_change(&r.id)
    }

    /// Key Vault's data plane: a secret's value, kept apart from the ARM resource
    /// (whose GET never returns it), as Key Vault keeps it.
    pub fn put_secret(&self, id: &ResourceId, value: &str) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(&serde_json::json!({"id": id.as_str(), "value": value}))
            .expect("JSON");
        Self::write_atomic(&Self::file_in(&self.vault_dir(), id), &bytes)
    }

    /// Every secret value in the vault (for tests that prove none leaks).
    pub fn secret_values(&self) -> Result<Vec<String>, StoreError> {
        let all: Vec<Value> = Self::read_all(&self.vault_dir())?;
        Ok(all
            .iter()
            .filter_map(|v| v.get("value")?.as_str().map(str::to_string))
            .collect())
    }

    pub fn delete(&self, id: &ResourceId) -> Result<bool, StoreError> {
        let path = self.file_for(id);
        if let Some(parent) = Self::indexed_parent(id) {
            let _ = std::fs::remove_file(Self::file_in(&self.children_dir(&parent), id));
        }
        let removed = match std::fs::remove_file(&path) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(Self::io(&path)(e)),
        };
        self.log_change(id)?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: &str) -> StoredResource {
        StoredResource::new(
            ResourceId::parse(id).unwrap(),
            "Microsoft.KeyVault/vaults/keys".into(),
            "2023-07-01".into(),
            serde_json::json!({"properties": {}}),
        )
    }

    /// Two processes on one directory (the embedded cloud of an apply and of an
    /// activation): each one's snapshot catches up with the other's writes and
    /// deletes from the change log, and children come from the snapshot.
    #[test]
    fn snapshots_catch_up_with_writes_of_another_store_on_the_same_directory() {
        let dir = std::env::temp_dir().join(format!("lifeboat-store-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (a, b) = (Store::at(dir.clone()), Store::at(dir.clone()));
        let vault = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/v";
        let k1 = key(&format!("{vault}/keys/k1"));
        a.put(&k1).unwrap();
        assert_eq!(b.scan().unwrap().len(), 1);
        let k2 = key(&format!("{vault}/keys/k2"));
        a.put(&k2).unwrap();
        let parent = ResourceId::parse(vault).unwrap();
        let kids: Vec<String> = b
            .scan()
            .unwrap()
            .children(&parent)
            .iter()
            .map(|r| r.id.name().to_string())
            .collect();
        assert_eq!(kids, ["k1", "k2"]);
        assert!(a.delete(&k1.id).unwrap());
        let snap = b.scan().unwrap();
        assert!(snap.get(&k1.id).is_none() && snap.get(&k2.id).is_some());
        // A torn last line (a writer mid-append) is read next time, not half.
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("changes.log"))
            .and_then(|mut f| {
                std::io::Write::write_all(&mut f, b"/subscriptions/s/resourceGroups/rg/prov")
            })
            .unwrap();
        assert_eq!(b.scan().unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn round_trips() {
        let dir = std::env::temp_dir().join(format!("lifeboat-store-{}", std::process::id()));
        let store = Store::at(dir.clone());
        assert!(store.list().unwrap().is_empty());
        let id = ResourceId::parse("/subscriptions/s/resourceGroups/rg").unwrap();
        let r = StoredResource::new(
            id.clone(),
            "Microsoft.Resources/resourceGroups".into(),
            "2021-04-01".into(),
            serde_json::json!({"location": "westeurope"}),
        );
        store.put(&r).unwrap();
        assert_eq!(store.get(&id).unwrap(), Some(r.clone()));
        assert_eq!(store.list().unwrap(), vec![r.clone()]);
        let vnet = ResourceId::parse(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v",
        )
        .unwrap();
        let subnet = ResourceId::parse(&format!("{}/subnets/a", vnet.as_str())).unwrap();
        let child = StoredResource::new(
            subnet.clone(),
            "Microsoft.Network/virtualNetworks/subnets".into(),
            "2024-05-01".into(),
            serde_json::json!({}),
        );
        store.put(&child).unwrap();
        assert_eq!(store.children(&vnet).unwrap(), vec![child]);
        assert!(
            store.children(&id).unwrap().is_empty(),
            "groups index nothing"
        );
        assert!(store.delete(&subnet).unwrap());
        assert!(store.children(&vnet).unwrap().is_empty());
        assert!(store.delete(&id).unwrap());
        assert!(store.get(&id).unwrap().is_none());
        std::fs::remove_dir_all(dir).ok();
    }
}
