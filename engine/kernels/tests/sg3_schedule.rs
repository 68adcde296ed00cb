//! The SG3 layer schedule against the official one recorded in each fixture's `reference.json`
//! and against the official 1024/256 px tables.

mod common;

use common::*;
use serde_json::Value;
use stylegraph_kernels::sg3::{Sg3Config, Sg3Kind};

const SG3_NETS: [&str; 4] = [
    "stylegan3-t-tiny-16",
    "stylegan3-r-tiny-16",
    "stylegan3-t-mid-64",
    "stylegan3-r-mid-64",
];

fn close(a: f64, b: &Value) -> bool {
    let b = b.as_f64().expect("number");
    (a - b).abs() <= 1e-12 * b.abs().max(1.0)
}

fn check_against_reference(net: &str, cfg: &Sg3Config) {
    let reference = reference_json(net);
    let table = &reference["layers"];
    let sched = cfg.schedule().expect("schedule");
    assert_eq!(
        cfg.num_ws() as u64,
        table["num_ws"].as_u64().unwrap(),
        "{net}"
    );
    assert!(close(sched.output_scale, &table["output_scale"]));
    let inp = &table["input"];
    assert_eq!(
        sched.input.channels as u64,
        inp["channels"].as_u64().unwrap(),
        "{net}"
    );
    assert_eq!(
        sched.input.size as u64,
        inp["size"][0].as_u64().unwrap(),
        "{net}"
    );
    assert!(
        close(sched.input.sampling_rate, &inp["sampling_rate"]),
        "{net}"
    );
    assert!(close(sched.input.bandwidth, &inp["bandwidth"]), "{net}");
    let layers = table["layers"].as_array().unwrap();
    assert_eq!(layers.len(), sched.layers.len(), "{net}");
    for (ours, theirs) in sched.layers.iter().zip(layers) {
        let ctx = format!("{net} {}", ours.name);
        assert_eq!(ours.name, theirs["name"].as_str().unwrap(), "{ctx}");
        assert_eq!(
            ours.is_torgb,
            theirs["is_torgb"].as_bool().unwrap(),
            "{ctx}"
        );
        assert_eq!(
            ours.is_critically_sampled,
            theirs["is_critically_sampled"].as_bool().unwrap(),
            "{ctx}"
        );
        assert_eq!(
            ours.in_channels as u64,
            theirs["in_channels"].as_u64().unwrap(),
            "{ctx}"
        );
        assert_eq!(
            ours.out_channels as u64,
            theirs["out_channels"].as_u64().unwrap(),
            "{ctx}"
        );
        assert_eq!(
            ours.in_size as u64,
            theirs["in_size"][0].as_u64().unwrap(),
            "{ctx}"
        );
        assert_eq!(
            ours.out_size as u64,
            theirs["out_size"][0].as_u64().unwrap(),
            "{ctx}"
        );
        for (v, key) in [
            (ours.in_sampling_rate, "in_sampling_rate"),
            (ours.out_sampling_rate, "out_sampling_rate"),
            (ours.tmp_sampling_rate, "tmp_sampling_rate"),
            (ours.in_cutoff, "in_cutoff"),
            (ours.out_cutoff, "out_cutoff"),
            (ours.in_half_width, "in_half_width"),
            (ours.out_half_width, "out_half_width"),
        ] {
            assert!(
                close(v, &theirs[key]),
                "{ctx} {key}: {v} vs {}",
                theirs[key]
            );
        }
        assert_eq!(
            ours.conv_kernel as u64,
            theirs["conv_kernel"].as_u64().unwrap(),
            "{ctx}"
        );
        assert_eq!(
            ours.up_factor as u64,
            theirs["up_factor"].as_u64().unwrap(),
            "{ctx}"
        );
        assert_eq!(
            ours.down_factor as u64,
            theirs["down_factor"].as_u64().unwrap(),
            "{ctx}"
        );
        assert_eq!(
            ours.up_taps as u64,
            theirs["up_taps"].as_u64().unwrap(),
            "{ctx}"
        );
        assert_eq!(
            ours.down_taps as u64,
            theirs["down_taps"].as_u64().unwrap(),
            "{ctx}"
        );
        assert_eq!(
            ours.down_radial,
            theirs["down_radial"].as_bool().unwrap(),
            "{ctx}"
        );
        let pad: Vec<i64> = theirs["padding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(ours.padding.to_vec(), pad, "{ctx}");
        assert_eq!(ours.conv_clamp, theirs["conv_clamp"].as_f64(), "{ctx}");
    }
}

#[test]
fn schedule_from_kwargs_matches_reference() {
    for net in SG3_NETS {
        let reference = reference_json(net);
        let cfg = Sg3Config::from_kwargs_json(&reference, None).expect("config from kwargs");
        check_against_reference(net, &cfg);
    }
}

#[test]
fn config_inferred_from_tensors_matches_kwargs() {
    for net in [
        "stylegan3-r-tiny-16",
        "stylegan3-t-mid-64",
        "stylegan3-r-mid-64",
    ] {
        let map = load_tensors(net);
        let inferred = Sg3Config::from_tensors(&map).expect("infer config");
        check_against_reference(net, &inferred);
        let reference = reference_json(net);
        let from_kwargs =
            Sg3Config::from_kwargs_json(&reference, Some(&map)).expect("kwargs + tensors");
        assert_eq!(
            from_kwargs.schedule().unwrap(),
            inferred.schedule().unwrap(),
            "{net}"
        );
        assert_eq!(inferred.use_radial_filters, net.contains("-r-"));
    }
}

#[test]
fn kwargs_that_contradict_the_weights_are_refused() {
    let net = "stylegan3-t-mid-64";
    let map = load_tensors(net);
    let mut reference = reference_json(net);
    reference["G_kwargs"]["channel_max"] = serde_json::json!(128);
    let err = Sg3Config::from_kwargs_json(&reference, Some(&map)).unwrap_err();
    assert!(err.to_string().contains("L0_36_128"), "{err}");
}

/// Values from the official `describe` tables of the released FFHQ structures.
#[test]
fn official_structures() {
    let t = Sg3Config::official(Sg3Kind::T, 1024).schedule().unwrap();
    let names: Vec<&str> = t.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "L0_36_512",
            "L1_36_512",
            "L2_52_512",
            "L3_52_512",
            "L4_84_512",
            "L5_148_512",
            "L6_148_512",
            "L7_276_323",
            "L8_276_203",
            "L9_532_128",
            "L10_1044_81",
            "L11_1044_51",
            "L12_1044_32",
            "L13_1024_32",
            "L14_1024_3"
        ]
    );
    assert_eq!(t.layers[2].padding, [-6, -9, -6, -9]);
    assert_eq!(t.layers[13].padding, [-11, -12, -11, -12]);
    assert_eq!((t.layers[10].up_factor, t.layers[10].up_taps), (4, 24));
    let r = Sg3Config::official(Sg3Kind::R, 1024).schedule().unwrap();
    assert_eq!(r.layers[7].name, "L7_276_645");
    assert_eq!(r.layers[0].padding, [11, 10, 11, 10]);
    assert_eq!(r.layers[13].padding, [-9, -10, -9, -10]);
    assert!(r.layers[11].down_radial && !r.layers[12].down_radial);
    let t256 = Sg3Config::official(Sg3Kind::T, 256).schedule().unwrap();
    let names: Vec<&str> = t256.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "L0_36_512",
            "L1_36_512",
            "L2_36_512",
            "L3_52_512",
            "L4_52_512",
            "L5_84_512",
            "L6_84_512",
            "L7_148_362",
            "L8_148_256",
            "L9_148_181",
            "L10_276_128",
            "L11_276_91",
            "L12_276_64",
            "L13_256_64",
            "L14_256_3"
        ]
    );
}

/// Our filter design (SciPy firwin / the SG3-R jinc filter) reproduces the stored buffers.
#[test]
fn designed_filters_match_stored_buffers() {
    use stylegraph_kernels::filter_design::sg3_lowpass_filter;
    for net in [
        "stylegan3-r-tiny-16",
        "stylegan3-t-mid-64",
        "stylegan3-r-mid-64",
    ] {
        let map = load_tensors(net);
        let sched = Sg3Config::from_tensors(&map).unwrap().schedule().unwrap();
        let mut checked = 0;
        let mut worst = 0.0f32;
        for l in &sched.layers {
            let up = sg3_lowpass_filter(
                l.up_taps,
                l.in_cutoff,
                l.in_half_width * 2.0,
                l.tmp_sampling_rate,
                false,
            );
            let down = sg3_lowpass_filter(
                l.down_taps,
                l.out_cutoff,
                l.out_half_width * 2.0,
                l.tmp_sampling_rate,
                l.down_radial,
            );
            for (designed, which) in [(up, "up_filter"), (down, "down_filter")] {
                let stored = map.get_opt(&format!("synthesis.{}.{which}", l.name));
                match (designed, stored) {
                    (None, None) => {}
                    (Some(d), Some(s)) => {
                        let err = max_abs_diff(&d, &s.data);
                        let peak = s.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                        worst = worst.max(err / peak);
                        assert!(err <= 4e-7 * peak, "{net} {} {which}: error {err}", l.name);
                        checked += 1;
                    }
                    (d, s) => panic!(
                        "{net} {} {which}: designed {:?} stored {:?}",
                        l.name,
                        d.is_some(),
                        s.is_some()
                    ),
                }
            }
        }
        assert_eq!(checked, 28, "{net}");
        eprintln!("{net}: filters match within {worst:e} of their peak");
    }
}
