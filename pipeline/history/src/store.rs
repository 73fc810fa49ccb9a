//! Where a history's files live: a local folder, or a prefix of an object
//! store (`s3://bucket/prefix`) that many `run` instances share, each
//! writing under `<prefix>/<instance>/`.
//!
//! Paths below a [`Root`] are relative and `/`-separated
//! (`samples/date=2026-01-05/hour=07/part-….parquet`). In a folder a file
//! is written under a temporary name, synced, then renamed; an object
//! store makes a put whole by itself, so readers never see half a file in
//! either. S3 credentials, region and endpoint come from the usual `AWS_*`
//! environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`).

use super::writer::HistoryError;
use bytes::Bytes;
use futures_util::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use super::config::is_url;

/// An object store and the prefix a history URL names in it.
pub struct Location {
    /// The store (a bucket).
    pub store: Arc<dyn ObjectStore>,
    /// The store's own URL (`s3://bucket`), under which it is registered
    /// for SQL.
    pub store_url: url::Url,
    /// The prefix inside the bucket (may be empty).
    pub prefix: ObjectPath,
}

impl Location {
    /// Connects to the store `url` names (`s3://bucket[/prefix]`).
    pub fn parse(url: &str) -> Result<Location, HistoryError> {
        let fail = |reason: String| HistoryError::Write {
            path: PathBuf::from(url),
            reason,
        };
        let (bucket, prefix) = super::config::bucket_and_prefix(url).map_err(fail)?;
        let store = s3_store(bucket).map_err(fail)?;
        let prefix = ObjectPath::parse(prefix).map_err(|e| fail(format!("its path: {e}")))?;
        let store_url = url::Url::parse(&format!("s3://{bucket}"))
            .map_err(|e| fail(format!("not a URL: {e}")))?;
        Ok(Location {
            store,
            store_url,
            prefix,
        })
    }

    /// A store in memory (for tests), its URL `memory://`.
    pub fn in_memory(prefix: &str) -> Location {
        Location {
            store: Arc::new(object_store::memory::InMemory::new()),
            store_url: url::Url::parse("memory://").expect("a URL"),
            prefix: ObjectPath::from(prefix),
        }
    }

    /// The URL of `path` (a key in the bucket).
    pub fn url_of(&self, path: &ObjectPath) -> String {
        format!("{}/{}", self.store_url.as_str().trim_end_matches('/'), path)
    }
}

/// An S3 client of `bucket` configured from the `AWS_*` environment
/// variables, with bounds that make an unreachable store an error in about
/// half a minute rather than minutes of retries (each overridable the same
/// way, e.g. `AWS_CONNECT_TIMEOUT`).
#[cfg(feature = "s3")]
fn s3_store(bucket: &str) -> Result<Arc<dyn ObjectStore>, String> {
    use object_store::ClientConfigKey::{ConnectTimeout, Timeout};
    use object_store::aws::AmazonS3ConfigKey::Client;
    let mut builder = object_store::aws::AmazonS3Builder::new()
        .with_config(Client(ConnectTimeout), "5s")
        .with_config(Client(Timeout), "60s")
        .with_retry(object_store::RetryConfig {
            max_retries: 3,
            retry_timeout: std::time::Duration::from_secs(30),
            ..Default::default()
        });
    for (key, value) in std::env::vars() {
        if let Some(key) = key
            .starts_with("AWS_")
            .then(|| key.to_ascii_lowercase().parse().ok())
            .flatten()
        {
            builder = builder.with_config(key, value);
        }
    }
    let store = builder
        .with_bucket_name(bucket)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(store))
}

/// Without the `s3` feature there is no S3 client.
#[cfg(not(feature = "s3"))]
fn s3_store(_bucket: &str) -> Result<Arc<dyn ObjectStore>, String> {
    Err("this build has no S3 client (built without the `s3` feature)".into())
}

/// The folder or object-store prefix a history writes under.
pub enum Root {
    /// A local folder.
    Folder(PathBuf),
    /// A prefix in an object store (one instance's).
    Store(StoreRoot),
}

/// One instance's prefix in an object store, with the runtime its
/// requests run on (the history's callers are not async).
pub struct StoreRoot {
    store: Arc<dyn ObjectStore>,
    base: ObjectPath,
    url: String,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Root {
    /// The folder `dir`, or, when `dir` is an object-store URL, the prefix
    /// `instance` under it.
    pub fn open(dir: &Path, instance: &str) -> Result<Root, HistoryError> {
        if !is_url(dir) {
            return Ok(Root::Folder(dir.to_path_buf()));
        }
        Root::in_store(&Location::parse(&dir.to_string_lossy())?, instance)
    }

    /// The prefix `instance` below `location`'s.
    pub fn in_store(location: &Location, instance: &str) -> Result<Root, HistoryError> {
        let base = location.prefix.clone().join(instance);
        let url = location.url_of(&base);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("history-store")
            .enable_all()
            .build()
            .map_err(|e| HistoryError::Write {
                path: PathBuf::from(&url),
                reason: format!("no runtime for the object store: {e}"),
            })?;
        Ok(Root::Store(StoreRoot {
            store: location.store.clone(),
            base,
            url,
            runtime: Some(runtime),
        }))
    }

    /// The folder, for a local history.
    pub fn folder(&self) -> Option<&Path> {
        match self {
            Root::Folder(dir) => Some(dir),
            Root::Store(_) => None,
        }
    }

    /// Where `rel` is, for messages.
    pub fn describe(&self, rel: &str) -> PathBuf {
        match self {
            Root::Folder(dir) => dir.join(rel),
            Root::Store(s) if rel.is_empty() => PathBuf::from(&s.url),
            Root::Store(s) => PathBuf::from(format!("{}/{rel}", s.url)),
        }
    }

    fn fail(&self, rel: &str, e: &dyn std::fmt::Display) -> HistoryError {
        HistoryError::Write {
            path: self.describe(rel),
            reason: e.to_string(),
        }
    }

    /// Writes `bytes` as `rel`, whole or not at all.
    pub fn put(&self, rel: &str, bytes: Vec<u8>) -> Result<(), HistoryError> {
        match self {
            Root::Folder(dir) => {
                let path = dir.join(rel);
                let tmp = dir.join(format!("{rel}.tmp"));
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| self.fail(rel, &e))?;
                }
                let mut file = std::fs::File::create(&tmp).map_err(|e| self.fail(rel, &e))?;
                std::io::Write::write_all(&mut file, &bytes).map_err(|e| self.fail(rel, &e))?;
                file.sync_all().map_err(|e| self.fail(rel, &e))?;
                std::fs::rename(&tmp, &path).map_err(|e| self.fail(rel, &e))
            }
            Root::Store(s) => {
                let (store, key) = (s.store.clone(), s.key(rel));
                s.block(async move { store.put(&key, PutPayload::from(bytes)).await })
                    .map(|_| ())
                    .map_err(|e| self.fail(rel, &e))
            }
        }
    }

    /// The bytes of `rel`; `None` if there is no such file.
    pub fn get(&self, rel: &str) -> Result<Option<Bytes>, HistoryError> {
        match self {
            Root::Folder(dir) => match std::fs::read(dir.join(rel)) {
                Ok(bytes) => Ok(Some(Bytes::from(bytes))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(self.fail(rel, &e)),
            },
            Root::Store(s) => {
                let (store, key) = (s.store.clone(), s.key(rel));
                let got = s.block(async move {
                    match store.get(&key).await {
                        Ok(got) => got.bytes().await.map(Some),
                        Err(object_store::Error::NotFound { .. }) => Ok(None),
                        Err(e) => Err(e),
                    }
                });
                got.map_err(|e| self.fail(rel, &e))
            }
        }
    }

    /// The last `n` bytes of `rel` (all of it, if shorter), and its size.
    pub fn tail(&self, rel: &str, n: u64) -> Result<(Bytes, u64), HistoryError> {
        match self {
            Root::Folder(dir) => {
                use std::io::{Read, Seek, SeekFrom};
                let read = || -> std::io::Result<(Bytes, u64)> {
                    let mut file = std::fs::File::open(dir.join(rel))?;
                    let size = file.metadata()?.len();
                    let start = size.saturating_sub(n);
                    file.seek(SeekFrom::Start(start))?;
                    let mut out = Vec::with_capacity((size - start) as usize);
                    file.read_to_end(&mut out)?;
                    Ok((Bytes::from(out), size))
                };
                read().map_err(|e| self.fail(rel, &e))
            }
            Root::Store(s) => {
                let (store, key) = (s.store.clone(), s.key(rel));
                s.block(async move {
                    let size = store.head(&key).await?.size;
                    let bytes = store.get_range(&key, size.saturating_sub(n)..size).await?;
                    Ok((bytes, size))
                })
                .map_err(|e| self.fail(rel, &e))
            }
        }
    }

    /// Every file below `rel_dir` (recursively), as paths relative to the
    /// root, sorted.
    pub fn list(&self, rel_dir: &str) -> Result<Vec<String>, HistoryError> {
        let mut out = match self {
            Root::Folder(dir) => files_below(&dir.join(rel_dir))
                .into_iter()
                .filter_map(|p| {
                    let rel = p.strip_prefix(dir).ok()?;
                    let parts: Option<Vec<&str>> =
                        rel.components().map(|c| c.as_os_str().to_str()).collect();
                    Some(parts?.join("/"))
                })
                .collect(),
            Root::Store(s) => {
                let (store, key, base) = (s.store.clone(), s.key(rel_dir), s.base.clone());
                let objects = s.block(async move {
                    store
                        .list(Some(&key))
                        .try_collect::<Vec<_>>()
                        .await
                        .map(|all| {
                            all.into_iter()
                                .filter_map(|o| {
                                    let parts: Vec<String> = o
                                        .location
                                        .prefix_match(&base)?
                                        .map(|p| p.as_ref().to_string())
                                        .collect();
                                    Some(parts.join("/"))
                                })
                                .collect::<Vec<String>>()
                        })
                });
                objects.map_err(|e| self.fail(rel_dir, &e))?
            }
        };
        out.sort();
        Ok(out)
    }

    /// The names of the files directly in the root (not the tables below).
    pub fn list_here(&self) -> Result<Vec<String>, HistoryError> {
        let mut out: Vec<String> = match self {
            Root::Folder(dir) => match std::fs::read_dir(dir) {
                Ok(entries) => entries
                    .flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                    .filter_map(|e| e.file_name().to_str().map(String::from))
                    .collect(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(self.fail("", &e)),
            },
            Root::Store(s) => {
                let (store, base) = (s.store.clone(), s.base.clone());
                let listed = s.block(async move { store.list_with_delimiter(Some(&base)).await });
                listed
                    .map_err(|e| self.fail("", &e))?
                    .objects
                    .into_iter()
                    .filter_map(|o| o.location.filename().map(String::from))
                    .collect()
            }
        };
        out.sort();
        Ok(out)
    }

    /// Deletes `rel` (a file that is not there is no error).
    pub fn delete(&self, rel: &str) -> Result<(), HistoryError> {
        match self {
            Root::Folder(dir) => match std::fs::remove_file(dir.join(rel)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.fail(rel, &e)),
                _ => Ok(()),
            },
            Root::Store(s) => {
                let (store, key) = (s.store.clone(), s.key(rel));
                s.block(async move {
                    match store.delete(&key).await {
                        Err(object_store::Error::NotFound { .. }) => Ok(()),
                        other => other,
                    }
                })
                .map_err(|e| self.fail(rel, &e))
            }
        }
    }

    /// Deletes everything below `rel_dir` (in a folder, the folder too).
    pub fn delete_all(&self, rel_dir: &str) -> Result<(), HistoryError> {
        match self {
            Root::Folder(dir) => match std::fs::remove_dir_all(dir.join(rel_dir)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.fail(rel_dir, &e)),
                _ => Ok(()),
            },
            Root::Store(_) => {
                for rel in self.list(rel_dir)? {
                    self.delete(&rel)?;
                }
                Ok(())
            }
        }
    }
}

impl StoreRoot {
    fn key(&self, rel: &str) -> ObjectPath {
        rel.split('/')
            .filter(|p| !p.is_empty())
            .fold(self.base.clone(), |path, part| path.join(part))
    }

    /// Runs `request` on the store's runtime and waits for its answer (from
    /// any thread, async or not).
    fn block<T: Send + 'static>(
        &self,
        request: impl Future<Output = object_store::Result<T>> + Send + 'static,
    ) -> Result<T, String> {
        let Some(runtime) = &self.runtime else {
            return Err("the object store's runtime is stopped".into());
        };
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = tx.send(request.await);
        });
        match rx.recv() {
            Ok(answer) => answer.map_err(|e| e.to_string()),
            Err(_) => Err("the object store's request stopped".into()),
        }
    }
}

impl Drop for StoreRoot {
    fn drop(&mut self) {
        // Dropped from async code too: stop without waiting.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Every file below `dir`, recursively.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_below(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roots(dir: &Path) -> Vec<Root> {
        vec![
            Root::Folder(dir.to_path_buf()),
            Root::in_store(&Location::in_memory("history"), "a").unwrap(),
        ]
    }

    #[test]
    fn puts_lists_gets_and_deletes_the_same_in_a_folder_and_a_store() {
        let dir = tempfile::tempdir().unwrap();
        for root in roots(dir.path()) {
            root.put("t/date=2026-01-05/part-1.parquet", b"one".to_vec())
                .unwrap();
            root.put("t/date=2026-01-06/part-2.parquet", b"two".to_vec())
                .unwrap();
            root.put("_checkpoint.json", b"{}".to_vec()).unwrap();
            assert_eq!(
                root.list("t").unwrap(),
                [
                    "t/date=2026-01-05/part-1.parquet",
                    "t/date=2026-01-06/part-2.parquet"
                ]
            );
            assert_eq!(
                root.get("t/date=2026-01-06/part-2.parquet")
                    .unwrap()
                    .as_deref(),
                Some(&b"two"[..])
            );
            assert_eq!(root.get("t/none.parquet").unwrap(), None);
            root.delete_all("t/date=2026-01-05").unwrap();
            root.delete("t/none.parquet").unwrap();
            assert_eq!(root.list("").unwrap().len(), 2);
        }
    }

    #[test]
    fn refuses_a_url_it_cannot_write_to_naming_it() {
        for (url, says) in [("gs://bucket/h", "not supported"), ("s3:///h", "no bucket")] {
            let err = Root::open(Path::new(url), "a").err().unwrap().to_string();
            assert!(err.contains(url) && err.contains(says), "{err}");
        }
    }
}
