//! Any bytes as a C-CDA document: conversion to FHIR never panics, and whatever converts can be
//! written back as a CCD that converts again.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(conversion) = ccda::to_fhir(data, &ccda::Options::default()) else {
        return;
    };
    let resources: Vec<serde_json::Value> = conversion.bundle["entry"]
        .as_array()
        .map(|a| a.iter().map(|e| e["resource"].clone()).collect())
        .unwrap_or_default();
    let Some(patient) = resources.iter().find(|r| r["resourceType"] == "Patient") else {
        panic!("a converted document always has a Patient");
    };
    let opts = ccda::CcdOptions {
        effective_time: Some("2024-01-01".into()),
        ..ccda::CcdOptions::default()
    };
    let ccd = ccda::to_ccd(patient, &resources, &opts)
        .expect("a converted document can be written as a CCD");
    ccda::to_fhir(ccd.as_bytes(), &ccda::Options::default()).expect("a written CCD converts again");
});
