//! Deterministic task contents: images, a class group and the ground-truth boxes, from a task id.

use visionlog_domain::{
    AnnotatedObject, BoundingBox, ClassGroup, CreateTask, CustomerId, ImageRef, ObjectId, ProductClass, Recipe,
    TaskType, image_folder,
};

use visionlog_imaging::Rgb;
pub use visionlog_imaging::scene::Rng;
use visionlog_imaging::scene::{self, Package, Scene};

/// What a customer sends and what is really on the images.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The command that creates the task.
    pub create: CreateTask,
    /// The true objects, per image.
    pub truth: Vec<AnnotatedObject>,
    /// What each image shows (the truth and the distractors), to paint it.
    pub scenes: Vec<Scene>,
}

/// The size of the demo's shelf photos.
pub const IMAGE_SIZE: (u32, u32) = (640, 480);

const PRODUCTS: &[&str] = &[
    "vanilla-cone",
    "cocoa-bar",
    "strawberry-cup",
    "lemon-ice",
    "mint-stick",
    "caramel-tub",
    "mango-sorbet",
    "cola-ice",
];

/// A package's box.
fn package_box(p: &Package) -> BoundingBox {
    BoundingBox { x: p.x, y: p.y, w: p.w, h: p.h }
}

/// A shelf photo like the scenarios' (same size and classes) that no task shows, painted, with
/// its true boxes and classes: for measuring a model on unseen scenes.
pub fn labelled_photo(key: &str) -> (Rgb, Vec<(BoundingBox, u32)>) {
    let (w, h) = IMAGE_SIZE;
    let s = scene::generate(key, w, h, PRODUCTS.len() as u32);
    let truth = s.truth().map(|p| (package_box(p), p.class_id)).collect();
    (s.render(), truth)
}

/// The class group key of a customer's scenarios.
pub fn class_group_key(customer: &str) -> String {
    format!("{customer}/ice-cream")
}

/// The class ids of the scenarios' class group.
pub fn class_ids() -> Vec<u32> {
    (1..=PRODUCTS.len() as u32).collect()
}

/// Generates the scenario of a task.
pub fn scenario(task_id: &str, customer: &str) -> Scenario {
    let mut rng = Rng::from_key(task_id);
    let classes: Vec<ProductClass> =
        PRODUCTS.iter().enumerate().map(|(i, n)| ProductClass { id: i as u32 + 1, name: (*n).to_owned() }).collect();
    let image_count = 1 + rng.below(3) as u32;
    let (width, height) = IMAGE_SIZE;
    let images: Vec<ImageRef> = (0..image_count)
        .map(|i| ImageRef { uri: format!("store://{}{task_id}/{i}.png", image_folder(customer)), width, height })
        .collect();
    let scenes: Vec<Scene> = (0..image_count)
        .map(|i| scene::generate(&format!("{task_id}/{i}"), width, height, classes.len() as u32))
        .collect();
    let mut truth = Vec::new();
    for (i, scene) in scenes.iter().enumerate() {
        for (n, p) in scene.truth().enumerate() {
            truth.push(AnnotatedObject {
                object_id: ObjectId(format!("gt-{i}-{n}")),
                image: i as u32,
                bbox: package_box(p),
                class_id: Some(p.class_id),
            });
        }
    }
    let create = CreateTask {
        customer: CustomerId::from(customer),
        task_type: TaskType::ProductDetection,
        recipe: Recipe::Detection,
        class_group: ClassGroup { key: class_group_key(customer), classes },
        images,
        callback_url: None,
        personal: None,
    };
    Scenario { create, truth, scenes }
}

/// The scenario's images as PNG, with the object-store keys their URIs name.
pub fn images(s: &Scenario) -> Vec<(String, Vec<u8>)> {
    s.create
        .images
        .iter()
        .zip(&s.scenes)
        .map(|(image, scene)| (image.uri.trim_start_matches("store://").to_owned(), scene.render().to_png()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use visionlog_domain::{Actor, DecideContext, Limits, TaskCommand, TaskCreated, TaskEvent, decide, evolve};

    #[test]
    fn scenarios_are_deterministic_and_valid() {
        let a = scenario("task-7", "acme");
        let b = scenario("task-7", "acme");
        assert_eq!(a.truth, b.truth);
        assert_eq!(a.create, b.create);
        assert!(!a.truth.is_empty());
        // every true box is a valid box of the task
        let state = [TaskEvent::TaskCreated(TaskCreated {
            customer: a.create.customer.clone(),
            task_type: a.create.task_type,
            recipe: a.create.recipe,
            class_group: a.create.class_group.clone(),
            images: a.create.images.clone(),
            callback_url: None,
            personal: None,
        })]
        .iter()
        .fold(None, evolve);
        let limits = Limits::default();
        assert!(
            decide(
                &None,
                &TaskCommand::CreateTask(a.create.clone()),
                &DecideContext { actor: &Actor::Customer("acme".into()), tenant: "acme", limits: &limits }
            )
            .is_ok()
        );
        let task = state.unwrap();
        for o in &a.truth {
            let img = &task.images[o.image as usize];
            assert!(o.bbox.x + o.bbox.w <= img.width as f32 && o.bbox.y + o.bbox.h <= img.height as f32);
        }
        assert_ne!(scenario("task-8", "acme").truth, a.truth);
    }
}
