//! The spectral detector's model file: a small JSON document with the feature settings, the
//! standardisation, the logistic-regression weights and the training report.

use serde_json::{json, Value};
use std::path::Path;
use stylegraph_kernels::classify::{BinarySummary, LogisticModel};

/// Format tag written into model files.
pub const FORMAT: &str = "stylegraph-spectral-detector";
/// Model file version this build reads and writes.
pub const VERSION: u64 = 1;

/// Errors reading or writing a model file; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ModelFileError {
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Evaluation of the trained model on its training and held-out images.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingReport {
    pub train: Option<BinarySummary>,
    pub holdout: Option<BinarySummary>,
}

/// A trained spectral detector.
#[derive(Clone, Debug, PartialEq)]
pub struct SpectralModel {
    /// Number of spectral rings (features).
    pub bins: usize,
    /// Decision threshold on the probability.
    pub threshold: f64,
    pub logistic: LogisticModel,
    pub report: TrainingReport,
}

fn summary_json(s: &Option<BinarySummary>) -> Value {
    match s {
        None => Value::Null,
        Some(s) => json!({
            "count": s.count,
            "synthetic": s.positives,
            "threshold": s.threshold,
            "accuracy": s.accuracy,
            "real_accuracy": s.real_accuracy,
            "synthetic_accuracy": s.fake_accuracy,
            "auc": s.auc,
            "average_precision": s.average_precision,
        }),
    }
}

fn summary_from(v: &Value) -> Option<BinarySummary> {
    let o = v.as_object()?;
    let f = |k: &str| o.get(k).and_then(Value::as_f64);
    Some(BinarySummary {
        count: o.get("count")?.as_u64()? as usize,
        positives: o.get("synthetic")?.as_u64()? as usize,
        threshold: f("threshold")?,
        accuracy: f("accuracy")?,
        real_accuracy: f("real_accuracy"),
        fake_accuracy: f("synthetic_accuracy"),
        auc: f("auc"),
        average_precision: f("average_precision"),
    })
}

impl SpectralModel {
    /// The model as JSON.
    pub fn to_json(&self) -> Value {
        json!({
            "format": FORMAT,
            "version": VERSION,
            "features": {"kind": "azimuthal_log_power", "bins": self.bins},
            "threshold": self.threshold,
            "mean": self.logistic.mean,
            "scale": self.logistic.scale,
            "weights": self.logistic.weights,
            "bias": self.logistic.bias,
            "training": {
                "train": summary_json(&self.report.train),
                "holdout": summary_json(&self.report.holdout),
            },
        })
    }

    /// Parses a model; `path` names the source in errors.
    pub fn from_json(v: &Value, path: &str) -> Result<SpectralModel, ModelFileError> {
        let bad = |message: String| ModelFileError::Invalid {
            path: path.to_owned(),
            message,
        };
        if v.get("format").and_then(Value::as_str) != Some(FORMAT) {
            return Err(bad(format!(
                "not a spectral detector model (no \"format\": \"{FORMAT}\")"
            )));
        }
        let ver = v.get("version").and_then(Value::as_u64).unwrap_or(0);
        if ver != VERSION {
            return Err(bad(format!(
                "model version {ver}, this build reads {VERSION}"
            )));
        }
        let vec = |k: &str| -> Result<Vec<f64>, ModelFileError> {
            v.get(k)
                .and_then(Value::as_array)
                .ok_or_else(|| bad(format!("missing array {k:?}")))?
                .iter()
                .map(|x| x.as_f64().filter(|f| f.is_finite()))
                .collect::<Option<Vec<f64>>>()
                .ok_or_else(|| bad(format!("{k:?} must hold finite numbers")))
        };
        let bins = v
            .pointer("/features/bins")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("missing features.bins".into()))? as usize;
        let (mean, scale, weights) = (vec("mean")?, vec("scale")?, vec("weights")?);
        if bins == 0 || mean.len() != bins || scale.len() != bins || weights.len() != bins {
            return Err(bad(format!(
                "features.bins is {bins} but mean/scale/weights have {}/{}/{} values",
                mean.len(),
                scale.len(),
                weights.len()
            )));
        }
        if scale.iter().any(|&s| s <= 0.0) {
            return Err(bad("\"scale\" values must be positive".into()));
        }
        let bias = v
            .get("bias")
            .and_then(Value::as_f64)
            .ok_or_else(|| bad("missing number \"bias\"".into()))?;
        Ok(SpectralModel {
            bins,
            threshold: v.get("threshold").and_then(Value::as_f64).unwrap_or(0.5),
            logistic: LogisticModel {
                mean,
                scale,
                weights,
                bias,
            },
            report: TrainingReport {
                train: v.pointer("/training/train").and_then(summary_from),
                holdout: v.pointer("/training/holdout").and_then(summary_from),
            },
        })
    }

    /// Writes the model atomically as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<(), ModelFileError> {
        let text =
            serde_json::to_string_pretty(&self.to_json()).map_err(|e| ModelFileError::Invalid {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| ModelFileError::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        stylegraph_npy::write_atomic(path, text.as_bytes()).map_err(|e| ModelFileError::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Reads a model file.
    pub fn load(path: &Path) -> Result<SpectralModel, ModelFileError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ModelFileError::Io {
            path: p.clone(),
            source,
        })?;
        let v: Value = serde_json::from_str(&text).map_err(|e| ModelFileError::Invalid {
            path: p.clone(),
            message: format!("not JSON: {e}"),
        })?;
        SpectralModel::from_json(&v, &p)
    }
}
