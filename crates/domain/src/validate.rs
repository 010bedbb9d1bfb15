//! Validation rules shared by several commands.

use crate::ids::is_valid_id;
use crate::limits::Limits;
use crate::rejection::Rejection;
use crate::values::{BoundingBox, ClassGroup, ImageRef};

/// Tolerance for boxes touching the image border after float rounding.
const EDGE_EPSILON: f32 = 0.5;

pub(crate) fn string(field: &str, value: &str, max: usize) -> Result<(), Rejection> {
    if value.len() > max {
        return Err(Rejection::StringTooLong { field: field.to_owned(), len: value.len() as u64, max: max as u64 });
    }
    Ok(())
}

pub(crate) fn non_empty(field: &str, value: &str, max: usize) -> Result<(), Rejection> {
    string(field, value, max)?;
    if value.trim().is_empty() {
        return Err(Rejection::InvalidField { field: field.to_owned() });
    }
    Ok(())
}

pub(crate) fn id(field: &str, value: &str, limits: &Limits) -> Result<(), Rejection> {
    string(field, value, limits.max_id)?;
    if !is_valid_id(value, limits.max_id) {
        return Err(Rejection::InvalidField { field: field.to_owned() });
    }
    Ok(())
}

pub(crate) fn count(what: &str, count: usize, max: usize) -> Result<(), Rejection> {
    if count > max {
        return Err(Rejection::TooMany { what: what.to_owned(), count: count as u64, max: max as u64 });
    }
    Ok(())
}

pub(crate) fn uri(field: &str, value: &str, schemes: &[&str], limits: &Limits) -> Result<(), Rejection> {
    string(field, value, limits.max_uri)?;
    let parsed =
        url::Url::parse(value).map_err(|e| Rejection::InvalidUri { field: field.to_owned(), reason: e.to_string() })?;
    if !schemes.contains(&parsed.scheme()) {
        return Err(Rejection::DisallowedUriScheme { field: field.to_owned(), scheme: parsed.scheme().to_owned() });
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(Rejection::InvalidUri { field: field.to_owned(), reason: "no host".to_owned() });
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(Rejection::InvalidUri { field: field.to_owned(), reason: "credentials in uri".to_owned() });
    }
    Ok(())
}

pub(crate) fn class_group(group: &ClassGroup, limits: &Limits) -> Result<(), Rejection> {
    non_empty("class_group.key", &group.key, limits.max_string)?;
    if group.classes.is_empty() {
        return Err(Rejection::InvalidField { field: "class_group.classes".to_owned() });
    }
    count("classes", group.classes.len(), limits.max_classes)?;
    let mut seen = std::collections::HashSet::with_capacity(group.classes.len());
    for class in &group.classes {
        non_empty("class_group.classes.name", &class.name, limits.max_string)?;
        if !seen.insert(class.id) {
            return Err(Rejection::DuplicateClass { class_id: class.id });
        }
    }
    Ok(())
}

pub(crate) fn images(images: &[ImageRef], customer: &str, limits: &Limits) -> Result<(), Rejection> {
    if images.is_empty() {
        return Err(Rejection::InvalidField { field: "images".to_owned() });
    }
    count("images", images.len(), limits.max_images)?;
    let folder = crate::ids::image_folder(customer);
    for (i, image) in images.iter().enumerate() {
        uri("images.uri", &image.uri, crate::limits::ALLOWED_IMAGE_SCHEMES, limits)?;
        if let Some(key) = image.uri.strip_prefix("store://")
            && !key.starts_with(&folder)
        {
            return Err(Rejection::InvalidUri {
                field: "images.uri".to_owned(),
                reason: format!("a store:// image of this customer's task is under store://{folder}"),
            });
        }
        if image.width == 0
            || image.height == 0
            || image.width > limits.max_image_side
            || image.height > limits.max_image_side
        {
            return Err(Rejection::InvalidImageSize { image: i as u32 });
        }
    }
    Ok(())
}

/// Checks that an object lies inside its image and has a finite, positive size.
pub(crate) fn placed_box(object: &str, image: u32, bbox: &BoundingBox, images: &[ImageRef]) -> Result<(), Rejection> {
    let Some(img) = images.get(image as usize) else {
        return Err(Rejection::ImageOutOfRange { object: object.to_owned(), image, images: images.len() as u32 });
    };
    let invalid = |reason: &str| Rejection::InvalidBox { object: object.to_owned(), reason: reason.to_owned() };
    let BoundingBox { x, y, w, h } = *bbox;
    if ![x, y, w, h].iter().all(|v| v.is_finite()) {
        return Err(invalid("coordinates must be finite numbers"));
    }
    if w <= 0.0 || h <= 0.0 {
        return Err(invalid("width and height must be positive"));
    }
    if x < -EDGE_EPSILON
        || y < -EDGE_EPSILON
        || x + w > img.width as f32 + EDGE_EPSILON
        || y + h > img.height as f32 + EDGE_EPSILON
    {
        return Err(invalid("box lies outside the image"));
    }
    Ok(())
}

pub(crate) fn class(group: &ClassGroup, class_id: Option<u32>) -> Result<(), Rejection> {
    match class_id {
        Some(id) if !group.contains(id) => Err(Rejection::UnknownClass { class_id: id }),
        _ => Ok(()),
    }
}
