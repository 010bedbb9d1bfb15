//! Models of visionlog on libtorch.
pub fn device() -> tch::Device {
    tch::Device::cuda_if_available()
}
#[cfg(test)]
mod t {
    #[test]
    fn smoke() {
        let t = tch::Tensor::from_slice(&[1f32, 2., 3.]);
        assert_eq!(f64::try_from(t.sum(tch::Kind::Float)).unwrap(), 6.0);
        println!("{:?} threads {}", super::device(), tch::get_num_threads());
    }
}
