//! The classification pipeline of the seed's service: image bytes → preprocessing → network → softmax → labels.
//!
//! A [`Pipeline`] is what a model package holds ([`crate::package`]) and what `systole classify` and the
//! server run: the preprocessing configuration, the network graph (its f32 weights; the engine's quantized
//! copy is compiled from it, or read from the package), and the class names. It is independent of where the
//! network runs: [`Pipeline::input`] makes the network's input from a photo, [`softmax`] and [`top_k`] read
//! its output.

use ndarray::{ArrayD, ArrayView1};
use thiserror::Error;

use crate::graph::Graph;
use crate::preprocess::{preprocess, PreprocessConfig, PreprocessError};

/// Why a pipeline could not be built or could not take an input.
#[derive(Debug, Error)]
pub enum PipelineError {
    /// The image could not be decoded or preprocessed.
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
    /// The pipeline's parts do not fit together (graph input, preprocessing, labels).
    #[error("{0}")]
    Mismatch(String),
    /// The class names are not a JSON list of strings or a one-per-line text.
    #[error("class names: {0}")]
    Labels(String),
}

/// Preprocessing, network and class names: everything needed to turn a photo into labelled probabilities.
#[derive(Clone, Debug)]
pub struct Pipeline {
    /// A short name (the package's, or the model file's stem).
    pub name: String,
    /// How photos become the network's input.
    pub preprocess: PreprocessConfig,
    /// The network: one input `[1, 3, H, W]`, one output `[1, classes]` (logits).
    pub graph: Graph,
    /// One name per class, in the output's order.
    pub labels: Vec<String>,
}

impl Pipeline {
    /// Checks that the parts fit: one graph input of the preprocessed shape, one output with one value per
    /// class name.
    pub fn new(
        name: impl Into<String>,
        preprocess: PreprocessConfig,
        graph: Graph,
        labels: Vec<String>,
    ) -> Result<Self, PipelineError> {
        preprocess.validate()?;
        let mismatch = |s: String| Err(PipelineError::Mismatch(s));
        let &[input] = graph.inputs.as_slice() else {
            return mismatch(format!(
                "the network has {} inputs; a classifier has one image input",
                graph.inputs.len()
            ));
        };
        let &[output] = graph.outputs.as_slice() else {
            return mismatch(format!("the network has {} outputs; a classifier has one", graph.outputs.len()));
        };
        let want = preprocess.output_shape();
        let got = &graph.values[input].shape;
        if got.as_slice() != want.as_slice() {
            return mismatch(format!(
                "the network's input '{}' is {got:?}, the preprocessing makes {want:?}",
                graph.values[input].name
            ));
        }
        let classes: usize = graph.values[output].shape.iter().skip(1).product();
        if classes != labels.len() {
            return mismatch(format!(
                "the network's output '{}' has {classes} classes, there are {} class names",
                graph.values[output].name,
                labels.len()
            ));
        }
        Ok(Pipeline { name: name.into(), preprocess, graph, labels })
    }

    /// The network's input for one encoded photo (JPEG, PNG, …).
    pub fn input(&self, image: &[u8]) -> Result<ArrayD<f32>, PipelineError> {
        Ok(preprocess(image, &self.preprocess)?.into_dyn())
    }
}

/// Reads class names from a JSON list of strings or from text with one name per line (blank lines skipped).
pub fn parse_labels(text: &str) -> Result<Vec<String>, PipelineError> {
    let labels: Vec<String> = if text.trim_start().starts_with('[') {
        serde_json::from_str(text).map_err(|e| PipelineError::Labels(format!("not a JSON list of names: {e}")))?
    } else {
        text.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
    };
    if labels.is_empty() {
        return Err(PipelineError::Labels("no class names".into()));
    }
    Ok(labels)
}

/// Softmax of a logit vector, computed in f64 for a stable sum.
pub fn softmax(logits: ArrayView1<f32>) -> Vec<f64> {
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
    let exp: Vec<f64> = logits.iter().map(|&v| (v as f64 - max).exp()).collect();
    let sum: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// Indices of the `k` largest values, largest first (ties: lower index first).
pub fn top_k(p: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::arr1;

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let p = softmax(arr1(&[1.0f32, 3.0, 2.0, 12.0]).view());
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(top_k(&p, 3), vec![3, 1, 2]);
        assert!(p[3] > 0.999 && p.iter().all(|v| v.is_finite()));
        // Large logits do not overflow.
        let big = softmax(arr1(&[1000.0f32, 999.0]).view());
        assert!((big[0] - 1.0 / (1.0 + (-1.0f64).exp())).abs() < 1e-12);
    }

    #[test]
    fn labels_from_json_or_lines() {
        assert_eq!(parse_labels("[\"a\", \"b c\"]").unwrap(), vec!["a", "b c"]);
        assert_eq!(parse_labels("tench\n\ngoldfish\n").unwrap(), vec!["tench", "goldfish"]);
        assert!(parse_labels("[1, 2]").is_err());
        assert!(parse_labels("\n \n").is_err());
    }
}
