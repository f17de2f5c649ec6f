//! Configuration files (`countersign.yaml`) as `Config::load` reads them: YAML into `Config`,
//! then validation. Never panics; a file that loads validates or says why not.
#![no_main]

use countersign_server::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, "countersign.yaml") {
        Ok(config) => {
            if let Err(e) = config.validate("countersign.yaml") {
                assert!(!e.to_string().is_empty());
            }
        }
        Err(e) => assert!(e.to_string().contains("countersign.yaml")),
    }
});
