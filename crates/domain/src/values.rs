//! Value types shared by commands, events and state.

use crate::ids::ObjectId;
use serde::{Deserialize, Serialize};

/// Says what kind of visual task a customer sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskType {
    /// Find and classify the products of a class group on shelf images.
    ProductDetection,
    /// Detect and read price tags (not yet served by any recipe).
    PriceTagReading,
}

/// Says which steps a task goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Recipe {
    /// One detector that boxes and classifies products; operators fill in when no model exists.
    Detection,
    /// A detector for boxes, then a crop recognizer for classes.
    DetectionAndRecognition,
}

impl Recipe {
    /// Its subtasks, in the order they run.
    pub fn subtasks(self) -> &'static [Subtask] {
        match self {
            Recipe::Detection => &[Subtask::Detection],
            Recipe::DetectionAndRecognition => &[Subtask::Detection, Subtask::Recognition],
        }
    }
}

/// A step of a recipe that a model does and an operator may do or correct (seed 000's
/// subtasks): detection draws the boxes, recognition gives each box its class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Subtask {
    /// The boxes (adding, moving, removing them).
    Detection,
    /// The class of each box.
    Recognition,
}

impl Subtask {
    /// Its name, as in `ModelNotFound.step` and in tenant settings.
    pub const fn name(self) -> &'static str {
        match self {
            Subtask::Detection => "detection",
            Subtask::Recognition => "recognition",
        }
    }
}

/// One product class of a class group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductClass {
    /// Stable numeric id inside the class group.
    pub id: u32,
    /// Human-readable name.
    pub name: String,
}

/// The products a customer looks for: a key plus its classes (seed 000 "class group").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassGroup {
    /// Key that names the group, e.g. `"acme/ice-cream"`.
    pub key: String,
    /// The classes of the group.
    pub classes: Vec<ProductClass>,
}

impl ClassGroup {
    /// Tells whether `class_id` belongs to the group.
    pub fn contains(&self, class_id: u32) -> bool {
        self.classes.iter().any(|c| c.id == class_id)
    }
}

/// An image of a task, by URI, with its pixel size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRef {
    /// Where the image lives (`s3://`, `https://`, `store://`).
    pub uri: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// Personal data of a task (store contact details, free text the customer sends), sealed with an
/// AEAD under its data subject's key before it is sent: commands, events, cold segments and
/// views only ever hold the ciphertext, and destroying the subject's key (`ShredSubject`)
/// makes it unreadable everywhere at once. See `crates/privacy`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The data subject: an opaque id the customer chooses (never a name or an address).
    pub subject: String,
    /// Which of the subject's keys sealed it.
    pub key_id: String,
    /// The AEAD nonce, base64.
    pub nonce: String,
    /// The ciphertext with its tag, base64.
    pub ciphertext: String,
}

/// An axis-aligned box in image pixels, origin at the top-left corner.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoundingBox {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

impl BoundingBox {
    /// Returns the intersection over union of two boxes.
    pub fn iou(&self, other: &BoundingBox) -> f32 {
        let x1 = self.x.max(other.x);
        let y1 = self.y.max(other.y);
        let x2 = (self.x + self.w).min(other.x + other.w);
        let y2 = (self.y + self.h).min(other.y + other.h);
        let inter = (x2 - x1).max(0.0) * (y2 - y1).max(0.0);
        let union = self.w * self.h + other.w * other.h - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }
}

/// Names a model version that produced a prediction.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelRef {
    /// Model id (stable across versions).
    pub model_id: String,
    /// Version of the model.
    pub version: u32,
}

/// One box found by a model, as sent in `RecordDetections`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Index of the image in the task.
    pub image: u32,
    /// The box.
    pub bbox: BoundingBox,
    /// Class found, where the model classifies.
    pub class_id: Option<u32>,
    /// Confidence in `[0, 1]`.
    pub score: f32,
}

/// One box found by a model, with the id the task gave it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectedObject {
    /// Object id inside the task.
    pub object_id: ObjectId,
    /// Index of the image in the task.
    pub image: u32,
    /// The box.
    pub bbox: BoundingBox,
    /// Class found, where the model classifies.
    pub class_id: Option<u32>,
    /// Confidence in `[0, 1]`.
    pub score: f32,
}

/// An object the recognition step is asked to classify: the box a detector or an operator
/// drew, named by its id in the task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecognitionTarget {
    /// Object id inside the task.
    pub object_id: ObjectId,
    /// Index of the image in the task.
    pub image: u32,
    /// The box.
    pub bbox: BoundingBox,
}

/// What a recognizer said of one object: its class and the probability it gave it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recognition {
    /// The object.
    pub object_id: ObjectId,
    /// The class of the group.
    pub class_id: u32,
    /// Probability in `[0, 1]`.
    pub score: f32,
}

/// One box drawn by an operator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnnotatedObject {
    /// Object id chosen by the annotation tool.
    pub object_id: ObjectId,
    /// Index of the image in the task.
    pub image: u32,
    /// The box.
    pub bbox: BoundingBox,
    /// Class given, if any yet.
    pub class_id: Option<u32>,
}

/// A (re)labelling of one object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectLabel {
    /// The object.
    pub object_id: ObjectId,
    /// Its new class.
    pub class_id: u32,
}

/// Who produced an object of the current result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ObjectSource {
    /// A model.
    Model,
    /// An operator.
    Operator,
}

/// One object of a task result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultObject {
    /// Object id inside the task.
    pub object_id: ObjectId,
    /// Index of the image in the task.
    pub image: u32,
    /// The box.
    pub bbox: BoundingBox,
    /// Its class, if known.
    pub class_id: Option<u32>,
    /// Model confidence, for model objects.
    pub score: Option<f32>,
    /// Who produced it.
    pub source: ObjectSource,
}

/// Why an operator works on a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SessionPurpose {
    /// Annotate a task the models could not do.
    Annotation,
    /// Check (and correct) an automatic result.
    QualityCheck,
}

/// Why assistance was requested.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AssistanceReason {
    /// No model is deployed for the customer and class group.
    ModelNotFound,
    /// The task manager re-sent the task to an operator.
    Resend,
}

/// What a re-process request asks for (seed 000 Task Manager commands).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReprocessMode {
    /// Run the latest deployed models again.
    LatestModels,
    /// Send the task to an operator for cleaning and correction.
    ResendToOperator,
}

/// Who generated a task result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResultSource {
    /// Models only.
    Automatic,
    /// An operator (possibly on top of models).
    Operator,
}

/// Stream versions as Avro `long`s (the Avro serializer takes no `u64`).
pub(crate) mod versions_as_long {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(versions: &[u64], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(versions.iter().map(|&v| i64::try_from(v).unwrap_or(i64::MAX)))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u64>, D::Error> {
        let longs = Vec::<i64>::deserialize(d)?;
        longs
            .into_iter()
            .map(|v| u64::try_from(v).map_err(|_| serde::de::Error::custom(format!("negative version {v}"))))
            .collect()
    }
}
