//! The seed's "service definition": a [`Pipeline`] and its engine weights in one model package file.
//!
//! [`crate::package`] is the container (a zip with a checksummed manifest); this module decides what goes in
//! it. A package written by [`write()`] holds four stages, in pipeline order:
//!
//! | stage | entry | contents |
//! |---|---|---|
//! | `preprocess` | `preprocess.json` | the [`PreprocessConfig`] (resize, crop, channel order, normalisation) |
//! | `model` | `model.onnx` | the network with its f32 weights (ONNX, opset 17): the reference path runs it |
//! | `engine` | `engine.bin` | the engine layers' quantized weights, for the engine configuration in its params |
//! | `labels` | `labels.txt` | the class names, one per line, in the network's output order |
//!
//! The `engine` stage's params record the engine configuration (`16x16-msfp16`, …) and, per engine layer,
//! its name, weight blocks and the offsets of its two planes in `engine.bin`. [`load`] imports the network,
//! compiles it for that configuration, and then installs the stored weights in place of its own
//! quantization, after checking that every layer's name, format and size agree: the engine runs exactly the
//! bits that were packaged.

use std::path::Path;

use arch::bfp::BfpTensor;
use arch::config::EngineConfig;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::compile::{self, CompiledModel};
use crate::onnx::{self, ImportOptions};
use crate::package::{Package, PackageError, PackageWriter};
use crate::pipeline::{self, Pipeline, PipelineError};
use crate::preprocess::PreprocessConfig;

/// Why a model package could not be written or loaded.
#[derive(Debug, Error)]
pub enum ServiceError {
    /// The container is damaged or not a package.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// A stage's contents are invalid.
    #[error("stage '{stage}': {detail}")]
    Stage {
        /// The stage.
        stage: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// The parts do not fit together.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// Compiling the network for the engine failed.
    #[error("compiling for the engine: {0}")]
    Compile(String),
}

/// A loaded package: the pipeline, and its network compiled with the packaged engine weights.
#[derive(Clone, Debug)]
pub struct Service {
    /// Preprocessing, network and class names.
    pub pipeline: Pipeline,
    /// The network compiled for the packaged engine configuration, running the packaged weights.
    pub compiled: CompiledModel,
}

/// Where one weight tensor lies in `engine.bin`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredTensor {
    /// Blocks in the tensor.
    blocks: usize,
    /// Byte offset of the packed mantissa plane.
    mantissas: usize,
    /// Byte offset of the exponent plane (one byte per block).
    exponents: usize,
}

/// One engine layer's weights (one tensor per convolution group).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredLayer {
    /// The step's name (its first node's).
    name: String,
    /// Its weight tensors.
    tensors: Vec<StoredTensor>,
}

/// The `engine` stage's params.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EngineParams {
    /// The engine configuration the weights are quantized for ([`EngineConfig::spec`], e.g. `16x16-msfp16`).
    config: String,
    /// The engine layers, in step order.
    layers: Vec<StoredLayer>,
}

/// Writes `pipeline` compiled as `compiled` (its engine weights) to a package file at `path`.
pub fn write(path: &Path, pipeline: &Pipeline, compiled: &CompiledModel) -> Result<(), ServiceError> {
    let stage = |stage: &'static str| move |e: String| ServiceError::Stage { stage, detail: e };
    let preprocess = serde_json::to_vec_pretty(&pipeline.preprocess).map_err(|e| stage("preprocess")(e.to_string()))?;
    let model = onnx::export::export_model(&pipeline.graph, 17).map_err(|e| stage("model")(e.to_string()))?;
    let mut engine = Vec::new();
    let mut layers = Vec::new();
    for (name, tensors) in compiled.engine_weights() {
        let mut stored = Vec::new();
        for t in tensors {
            let mantissas = engine.len();
            engine.extend_from_slice(&t.pack_mantissas());
            let exponents = engine.len();
            engine.extend_from_slice(t.exponent_codes());
            stored.push(StoredTensor { blocks: t.num_blocks(), mantissas, exponents });
        }
        layers.push(StoredLayer { name: name.to_string(), tensors: stored });
    }
    let config = compiled.config().spec().ok_or_else(|| {
        stage("engine")(format!("the engine configuration {} has no name to record", compiled.config()))
    })?;
    let params = EngineParams { config, layers };
    let graph = &pipeline.graph;
    let model_params = serde_json::json!({
        "input": graph.values[graph.inputs[0]].name,
        "output": graph.values[graph.outputs[0]].name,
        "opset": 17,
    });
    let mut w = PackageWriter::new(&pipeline.name);
    w.add_stage("preprocess", "preprocess.json", preprocess, serde_json::json!({}));
    w.add_stage("model", "model.onnx", model, model_params);
    w.add_stage(
        "engine",
        "engine.bin",
        engine,
        serde_json::to_value(&params).map_err(|e| stage("engine")(e.to_string()))?,
    );
    w.add_stage(
        "labels",
        "labels.txt",
        pipeline.labels.join("\n").into_bytes(),
        serde_json::json!({ "classes": pipeline.labels.len() }),
    );
    w.write(path)?;
    Ok(())
}

/// Loads a package written by [`write()`]: every entry's checksum verified, the pipeline's parts checked to fit,
/// the network compiled with the packaged engine weights.
pub fn load(path: &Path) -> Result<Service, ServiceError> {
    let package = Package::open(path)?;
    let bad = |stage: &'static str| move |detail: String| ServiceError::Stage { stage, detail };
    let preprocess: PreprocessConfig =
        serde_json::from_slice(package.stage_bytes("preprocess")?).map_err(|e| bad("preprocess")(e.to_string()))?;
    let graph = onnx::import_bytes(package.stage_bytes("model")?, &ImportOptions { batch: 1 })
        .map_err(|e| bad("model")(e.to_string()))?;
    let labels_text = std::str::from_utf8(package.stage_bytes("labels")?).map_err(|e| bad("labels")(e.to_string()))?;
    let labels = pipeline::parse_labels(labels_text)?;
    let pipeline = Pipeline::new(package.manifest().name.clone(), preprocess, graph, labels)?;

    let engine_stage = package.stage("engine").ok_or_else(|| bad("engine")("missing".into()))?;
    let params: EngineParams =
        serde_json::from_value(engine_stage.params.clone()).map_err(|e| bad("engine")(format!("params: {e}")))?;
    let config: EngineConfig = params.config.parse().map_err(|e| bad("engine")(format!("config: {e}")))?;
    let blob = package.stage_bytes("engine")?;
    let mut compiled = compile::compile(&pipeline.graph, &config).map_err(|e| ServiceError::Compile(e.to_string()))?;
    let mut stored = Vec::with_capacity(params.layers.len());
    for layer in &params.layers {
        let mut tensors = Vec::with_capacity(layer.tensors.len());
        for t in &layer.tensors {
            let mlen = t.blocks * config.format.mantissa_bytes();
            let (Some(m), Some(e)) =
                (blob.get(t.mantissas..t.mantissas + mlen), blob.get(t.exponents..t.exponents + t.blocks))
            else {
                return Err(bad("engine")(format!("layer '{}': weights lie outside engine.bin", layer.name)));
            };
            let tensor = BfpTensor::unpack(config.format, m, e)
                .map_err(|e| bad("engine")(format!("layer '{}': {e}", layer.name)))?;
            tensors.push(tensor);
        }
        stored.push((layer.name.clone(), tensors));
    }
    compiled.set_engine_weights(stored).map_err(|e| bad("engine")(e))?;
    Ok(Service { pipeline, compiled })
}
