//! Size limits the aggregate enforces on commands.

/// URI schemes an image may use: object stores and web servers. `store` names an object in
/// visionlog's own object store. `file`, `data`, `javascript` and the rest are refused.
pub const ALLOWED_IMAGE_SCHEMES: &[&str] = &["s3", "https", "http", "store"];

/// URI schemes a callback may use.
pub const ALLOWED_CALLBACK_SCHEMES: &[&str] = &["https", "http"];

/// Bounds on what one command or one task may carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Images per task.
    pub max_images: usize,
    /// Classes per class group.
    pub max_classes: usize,
    /// Objects in one command.
    pub max_objects_per_command: usize,
    /// Objects alive in one task.
    pub max_objects_per_task: usize,
    /// Bytes of a short string (names, keys, reasons).
    pub max_string: usize,
    /// Bytes of a URI.
    pub max_uri: usize,
    /// Bytes of an identifier.
    pub max_id: usize,
    /// Pixels of an image side.
    pub max_image_side: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_images: 64,
            max_classes: 10_000,
            max_objects_per_command: 10_000,
            max_objects_per_task: 20_000,
            max_string: 512,
            max_uri: 2048,
            max_id: 128,
            max_image_side: 65_535,
        }
    }
}
