//! The hex dumps in docs/PROTOCOL.md are what the library encodes: a
//! worker written from the document alone speaks the same bytes.

use billiard::protocol::{self, *};

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn every_hex_dump_in_the_protocol_document_is_what_the_library_encodes() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/PROTOCOL.md")).unwrap();
    assert_eq!(PROTOCOL_VERSION, 2, "the dumps show version 2");
    let section = doc
        .split("## Every frame in hex")
        .nth(1)
        .expect("the hex section");
    let block = section.split("```").nth(1).expect("its code block");
    let lines: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
    let region = 256u64 << 20;
    let expected: Vec<(&str, Vec<u8>)> = vec![
        ("HELLO", protocol::encode_hello(1234, 3).to_vec()),
        ("TASK", encode_task(7, b"hi")),
        ("ACK", encode_ack(7).to_vec()),
        ("RESULT", encode_result(7, true, b"ok")),
        ("RESULT", encode_result(7, false, b"bad")),
        ("FATAL", encode_fatal(b"no")),
        ("TASK_SHM", encode_task_shm(7, 8192, 65536)),
        (
            "RESULT_SHM",
            encode_result_shm(7, true, 8192 + region, 65536).to_vec(),
        ),
        ("SERVER_HELLO", {
            let mut body = 2u32.to_le_bytes().to_vec();
            body.extend_from_slice(&1234u32.to_le_bytes());
            encode_control(KIND_SERVER_HELLO, &body)
        }),
        ("FORK", encode_control(KIND_FORK, &[])),
        (
            "FORKED",
            encode_control(KIND_FORKED, &1235u32.to_le_bytes()),
        ),
        (
            "FORK_FAILED",
            encode_control(KIND_FORK_FAILED, &11u32.to_le_bytes()),
        ),
        ("EXITED", {
            let mut body = 1235u32.to_le_bytes().to_vec();
            body.extend_from_slice(&9i32.to_le_bytes());
            encode_control(KIND_EXITED, &body)
        }),
    ];
    assert_eq!(
        lines.len(),
        2 * expected.len(),
        "a title and a dump per frame"
    );
    for (pair, (name, bytes)) in lines.chunks(2).zip(&expected) {
        let title = pair[0];
        assert_eq!(
            title.split(' ').next().unwrap(),
            *name,
            "frames in the documented order"
        );
        assert_eq!(pair[1].trim(), hex(bytes), "{title}");
    }
    // Each worker frame decodes back as documented.
    assert!(matches!(
        decode(&encode_hello(1234, 3), DEFAULT_MAX_FRAME),
        Ok(Some((
            Frame::Hello {
                version: 2,
                pid: 1234,
                features: 3
            },
            17
        )))
    ));
}
