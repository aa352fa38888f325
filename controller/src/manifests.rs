//! Reading SeldonDeployments from YAML files, directories or standard input, and writing
//! objects as multi-document YAML: the file side of `render`, `check` and `explain`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::seldon::SeldonDeployment;

/// API versions under which a SeldonDeployment is read; Seldon's are identical in the
/// fields read here.
pub const SELDON_API_VERSIONS: [&str; 3] = [
    "machinelearning.seldon.io/v1",
    "machinelearning.seldon.io/v1alpha2",
    "machinelearning.seldon.io/v1alpha3",
];

/// A manifest that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file or directory cannot be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A document is not YAML.
    #[error("{path}: document {index}: {source}")]
    Yaml {
        /// The path.
        path: String,
        /// 1-based document number.
        index: usize,
        /// Why.
        source: serde_yaml_ng::Error,
    },
    /// A SeldonDeployment document does not have the expected shape.
    #[error("{path}: document {index} ({name}): not a SeldonDeployment: {source}")]
    Shape {
        /// The path.
        path: String,
        /// 1-based document number.
        index: usize,
        /// Its name, if readable.
        name: String,
        /// Why.
        source: serde_json::Error,
    },
}

/// SeldonDeployments read from manifests, and what was skipped.
#[derive(Debug, Default)]
pub struct Manifests {
    /// The SeldonDeployments, in reading order.
    pub seldon_deployments: Vec<SeldonDeployment>,
    /// Documents of other kinds, as `<path>: document <n>: <apiVersion> <kind>`.
    pub skipped: Vec<String>,
}

/// Reads every input: `-` is standard input, a directory is read for `*.yaml`, `*.yml`
/// and `*.json` files in name order. SeldonDeployments without a namespace get
/// `default_namespace`.
pub fn read(inputs: &[PathBuf], default_namespace: &str) -> Result<Manifests, ManifestError> {
    let mut manifests = Manifests::default();
    for input in inputs {
        if input.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| ManifestError::Io {
                    path: "-".into(),
                    source,
                })?;
            read_text("-", &text, default_namespace, &mut manifests)?;
        } else if input.is_dir() {
            for read in read_files(&files_in(input)?, default_namespace) {
                let read = read?;
                manifests.seldon_deployments.extend(read.seldon_deployments);
                manifests.skipped.extend(read.skipped);
            }
        } else {
            read_file(input, default_namespace, &mut manifests)?;
        }
    }
    Ok(manifests)
}

fn files_in(dir: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let io = |source| ManifestError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?
        .into_iter()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Reads each file on its own, on every core (a directory of a hundred thousand
/// SeldonDeployments is a hundred files of YAML to parse), each file's outcome in place.
fn read_files(files: &[PathBuf], default_namespace: &str) -> Vec<Result<Manifests, ManifestError>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(files.len());
    let read = |file: &PathBuf| {
        let mut manifests = Manifests::default();
        read_file(file, default_namespace, &mut manifests).map(|()| manifests)
    };
    if threads <= 1 {
        return files.iter().map(read).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let outcomes: Vec<std::sync::Mutex<Option<Result<Manifests, ManifestError>>>> =
        files.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(file) = files.get(i) else {
                        break;
                    };
                    let outcome = read(file);
                    if let Ok(mut slot) = outcomes[i].lock() {
                        *slot = Some(outcome);
                    }
                }
            });
        }
    });
    outcomes
        .into_iter()
        .zip(files)
        .map(|(slot, file)| {
            slot.into_inner().ok().flatten().unwrap_or_else(|| {
                // Only a reader thread that panicked leaves its file unread.
                Err(ManifestError::Io {
                    path: file.display().to_string(),
                    source: std::io::Error::other("not read"),
                })
            })
        })
        .collect()
}

fn read_file(
    path: &Path,
    default_namespace: &str,
    out: &mut Manifests,
) -> Result<(), ManifestError> {
    let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Io {
        path: path.display().to_string(),
        source,
    })?;
    read_text(&path.display().to_string(), &text, default_namespace, out)
}

/// Reads the documents of one YAML text.
pub fn read_text(
    path: &str,
    text: &str,
    default_namespace: &str,
    out: &mut Manifests,
) -> Result<(), ManifestError> {
    for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let value =
            serde_json::Value::deserialize(document).map_err(|source| ManifestError::Yaml {
                path: path.into(),
                index,
                source,
            })?;
        let items = match value.get("kind").and_then(|k| k.as_str()) {
            Some("List") => value
                .get("items")
                .and_then(|i| i.as_array())
                .cloned()
                .unwrap_or_default(),
            _ if value.is_null() => continue,
            _ => vec![value],
        };
        for mut item in items {
            let api_version = item
                .get("apiVersion")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string();
            let kind = item
                .get("kind")
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string();
            if kind != "SeldonDeployment" || !SELDON_API_VERSIONS.contains(&api_version.as_str()) {
                out.skipped
                    .push(format!("{path}: document {index}: {api_version} {kind}"));
                continue;
            }
            item["apiVersion"] = SELDON_API_VERSIONS[0].into();
            let name = item
                .pointer("/metadata/name")
                .and_then(|n| n.as_str())
                .unwrap_or("?")
                .to_string();
            let mut sdep: SeldonDeployment =
                serde_json::from_value(item).map_err(|source| ManifestError::Shape {
                    path: path.into(),
                    index,
                    name,
                    source,
                })?;
            if sdep.metadata.namespace.as_deref().unwrap_or("").is_empty() {
                sdep.metadata.namespace = Some(default_namespace.to_string());
            }
            out.seldon_deployments.push(sdep);
        }
    }
    Ok(())
}

/// Objects as multi-document YAML, each starting with `---`.
pub fn to_yaml(objects: &[serde_json::Value]) -> String {
    let mut out = YamlWriter::new(Vec::new());
    for object in objects {
        out.write(object)
            .expect("writing to a Vec is infallible, and a JSON value always has a YAML form");
    }
    String::from_utf8(out.into_inner()).expect("YAML is UTF-8")
}

/// Appends one object to `out` as a YAML document starting with `---`, as [`to_yaml`]
/// writes it.
pub fn encode_yaml(object: &serde_json::Value, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(b"---\n");
    // A JSON value always has a YAML form; an error would leave the document empty.
    if serde_yaml_ng::to_writer(&mut *out, object).is_err() {
        out.truncate(start + 4);
    }
}

/// Writes objects as multi-document YAML, one at a time, each starting with `---`: what
/// [`to_yaml`] returns, without holding all of it.
pub struct YamlWriter<W> {
    out: W,
    document: Vec<u8>,
}

impl<W: Write> YamlWriter<W> {
    /// A writer into `out`.
    pub fn new(out: W) -> Self {
        Self {
            out,
            document: Vec::new(),
        }
    }

    /// Writes one object.
    pub fn write(&mut self, object: &serde_json::Value) -> std::io::Result<()> {
        self.document.clear();
        encode_yaml(object, &mut self.document);
        self.out.write_all(&self.document)
    }

    /// The writer, after the last object.
    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_lists_and_other_kinds() {
        let text = r#"
# comment only
---
apiVersion: machinelearning.seldon.io/v1alpha2
kind: SeldonDeployment
metadata: {name: a}
spec: {predictors: [{name: p, graph: {name: x}}]}
---
apiVersion: v1
kind: List
items:
- apiVersion: machinelearning.seldon.io/v1
  kind: SeldonDeployment
  metadata: {name: b, namespace: models}
  spec: {predictors: []}
- apiVersion: v1
  kind: Service
  metadata: {name: s}
"#;
        let mut m = Manifests::default();
        read_text("t.yaml", text, "default", &mut m).unwrap();
        let ids: Vec<String> = m.seldon_deployments.iter().map(|s| s.model_id()).collect();
        assert_eq!(ids, ["default/a", "models/b"]);
        assert_eq!(m.skipped, ["t.yaml: document 2: v1 Service"]);
    }

    #[test]
    fn a_directory_is_read_in_name_order_and_its_first_bad_file_is_the_error() {
        let dir = std::env::temp_dir().join(format!("modelgate-manifests-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let sdep = |name: &str| {
            format!(
                "---\napiVersion: machinelearning.seldon.io/v1\nkind: SeldonDeployment\nmetadata: {{name: {name}}}\nspec: {{predictors: []}}\n"
            )
        };
        for i in 0..12 {
            let mut text = sdep(&format!("m{i:02}a"));
            text.push_str(&sdep(&format!("m{i:02}b")));
            text.push_str("---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n");
            std::fs::write(dir.join(format!("f{i:02}.yaml")), text).unwrap();
        }
        let read = read(std::slice::from_ref(&dir), "ns").unwrap();
        let names: Vec<&str> = read.seldon_deployments.iter().map(|s| s.name()).collect();
        let expected: Vec<String> = (0..12)
            .flat_map(|i| [format!("m{i:02}a"), format!("m{i:02}b")])
            .collect();
        assert_eq!(names, expected);
        assert_eq!(read.skipped.len(), 12);
        assert!(
            read.skipped[0].ends_with("f00.yaml: document 3: v1 Service"),
            "{:?}",
            read.skipped
        );
        // Two bad files: the first in name order is the error, wherever it was read.
        std::fs::write(dir.join("f05.yaml"), "a: [").unwrap();
        std::fs::write(dir.join("f09.yaml"), "a: [").unwrap();
        let err = super::read(std::slice::from_ref(&dir), "ns")
            .unwrap_err()
            .to_string();
        assert!(err.contains("f05.yaml: document 1"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_documents_say_where() {
        let mut m = Manifests::default();
        let err = read_text("t.yaml", "a: [", "default", &mut m)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("t.yaml: document 1"), "{err}");
        let err = read_text(
            "t.yaml",
            "apiVersion: machinelearning.seldon.io/v1\nkind: SeldonDeployment\nmetadata: {name: x}\nspec: {predictors: 3}\n",
            "default",
            &mut m,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("document 1 (x)"), "{err}");
    }
}
