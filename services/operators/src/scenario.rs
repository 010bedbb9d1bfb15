//! Deterministic task contents: images, a class group and the ground-truth boxes, from a task id.

use visionlog_domain::*;

/// A small deterministic generator (SplitMix64): same seed, same sequence, on every machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeds from a string.
    pub fn from_key(key: &str) -> Self {
        // FNV-1a, then mixed by the generator
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        Self(h)
    }

    /// Returns the next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Returns a number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Returns a float in `[lo, hi)`.
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 * (hi - lo)
    }
}

/// What a customer sends and what is really on the images.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The command that creates the task.
    pub create: CreateTask,
    /// The true objects, per image.
    pub truth: Vec<AnnotatedObject>,
}

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

/// Generates the scenario of a task.
pub fn scenario(task_id: &str, customer: &str) -> Scenario {
    let mut rng = Rng::from_key(task_id);
    let classes: Vec<ProductClass> =
        PRODUCTS.iter().enumerate().map(|(i, n)| ProductClass { id: i as u32 + 1, name: (*n).to_owned() }).collect();
    let image_count = 1 + rng.below(3) as u32;
    let images: Vec<ImageRef> = (0..image_count)
        .map(|i| ImageRef { uri: format!("store://images/{task_id}/{i}.png"), width: 1280, height: 960 })
        .collect();
    let mut truth = Vec::new();
    for (i, image) in images.iter().enumerate() {
        // products stand on shelves: rows of boxes of one size per shelf
        let shelves = 2 + rng.below(3);
        for shelf in 0..shelves {
            let h = image.height as f32 / shelves as f32;
            let w = rng.range(60.0, 140.0);
            let class_id = 1 + rng.below(classes.len() as u64) as u32;
            let count = 2 + rng.below(6);
            for slot in 0..count {
                let x = 10.0 + slot as f32 * (w + 8.0);
                if x + w >= image.width as f32 {
                    break;
                }
                truth.push(AnnotatedObject {
                    object_id: ObjectId(format!("gt-{i}-{shelf}-{slot}")),
                    image: i as u32,
                    bbox: BoundingBox { x, y: shelf as f32 * h + 4.0, w, h: h * 0.8 },
                    class_id: Some(class_id),
                });
            }
        }
    }
    let create = CreateTask {
        customer: CustomerId::from(customer),
        task_type: TaskType::ProductDetection,
        recipe: Recipe::Detection,
        class_group: ClassGroup { key: format!("{customer}/ice-cream"), classes },
        images,
        callback_url: None,
    };
    Scenario { create, truth }
}

/// The scenario's images as PNG, with the object-store keys their URIs name: grey shelves
/// with each true product painted in its class's colour.
pub fn images(s: &Scenario) -> Vec<(String, Vec<u8>)> {
    s.create
        .images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            let products: Vec<_> = s
                .truth
                .iter()
                .filter(|o| o.image == i as u32)
                .map(|o| (o.bbox.x, o.bbox.y, o.bbox.w, o.bbox.h, o.class_id.unwrap_or(0)))
                .collect();
            let png = visionlog_imaging::render_shelf(image.width, image.height, &products).to_png();
            (image.uri.trim_start_matches("store://").to_owned(), png)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        })]
        .iter()
        .fold(None, evolve);
        let limits = Limits::default();
        assert!(
            decide(
                &None,
                &TaskCommand::CreateTask(a.create.clone()),
                &DecideContext { actor: &Actor::Customer("acme".into()), limits: &limits }
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
