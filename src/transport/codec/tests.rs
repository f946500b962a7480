//! Tests of the wire format: round trips, size limits, the raw handshake and data frames.
use super::*;

#[test]
fn messages_round_trip_through_frames() {
    let mut wire = Vec::new();
    let request = Request::QueryMissing {
        paths: vec!["/ferry/store/a-x".into()],
    };
    write_message(&mut wire, &request).unwrap();
    write_message(&mut wire, &Response::Imported { objects: 3 }).unwrap();
    let mut r = &wire[..];
    assert_eq!(read_message::<Request>(&mut r).unwrap(), request);
    assert_eq!(
        read_message::<Response>(&mut r).unwrap(),
        Response::Imported { objects: 3 }
    );
    assert!(matches!(
        read_message::<Response>(&mut r),
        Err(CodecError::Closed)
    ));
}

#[test]
fn oversized_frame_is_refused_before_allocating() {
    let wire = (u32::MAX).to_le_bytes();
    let err = read_frame(&mut &wire[..]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the peer sent a frame of {} bytes, more than the limit of {MAX_FRAME}",
            u32::MAX
        )
    );
}

#[test]
fn garbage_payload_is_a_decode_error() {
    let mut wire = Vec::new();
    write_frame(&mut wire, &[0xff, 0xff, 0xff]).unwrap();
    assert!(matches!(
        read_message::<Request>(&mut &wire[..]),
        Err(CodecError::Decode(_))
    ));
}

#[test]
fn data_stream_round_trips_and_ends() {
    let data: Vec<u8> = (0..(3 * DATA_CHUNK + 17))
        .map(|i| (i % 251) as u8)
        .collect();
    let mut writer = DataStreamWriter::new(Vec::new()).unwrap();
    writer.write_all(&data).unwrap();
    let mut wire = writer.finish().unwrap();
    write_message(&mut wire, &Request::Bye).unwrap();
    let mut r = &wire[..];
    let mut reader = DataStreamReader::new(&mut r);
    let mut back = Vec::new();
    reader.read_to_end(&mut back).unwrap();
    assert!(reader.ended());
    assert_eq!(back, data);
    assert_eq!(read_message::<Request>(&mut r).unwrap(), Request::Bye);
}

#[test]
fn drain_skips_to_the_next_message() {
    let mut writer = DataStreamWriter::new(Vec::new()).unwrap();
    writer.write_all(&vec![7u8; DATA_CHUNK + 5]).unwrap();
    let mut wire = writer.finish().unwrap();
    write_message(&mut wire, &Request::Bye).unwrap();
    let mut r = &wire[..];
    let mut reader = DataStreamReader::new(&mut r);
    let mut first = [0u8; 10];
    reader.read_exact(&mut first).unwrap();
    reader.drain().unwrap();
    assert_eq!(read_message::<Request>(&mut r).unwrap(), Request::Bye);
}

fn write_data_frame(w: &mut Vec<u8>, kind: u8, body: &[u8]) -> std::io::Result<()> {
    w.write_all(&frame_head(kind, body.len()))?;
    w.write_all(body)
}

/// Bytes no compressor can shrink (xorshift).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn text(len: usize) -> Vec<u8> {
    let mut text = Vec::new();
    let mut i = 0;
    while text.len() < len {
        text.extend_from_slice(format!("line {i}: a service's configuration text\n").as_bytes());
        i += 1;
    }
    text.truncate(len);
    text
}

/// The frames of a data stream: (kind, body length), end frame excluded.
fn frames_of(mut wire: &[u8]) -> Vec<(u8, usize)> {
    let mut frames = Vec::new();
    loop {
        let frame = read_frame(&mut wire).unwrap();
        if frame.is_empty() {
            return frames;
        }
        frames.push((frame[0], frame.len() - 1));
    }
}

#[test]
fn incompressible_blocks_go_raw_without_inflating() {
    let data = noise(3 * DATA_CHUNK + 100, 7);
    let mut writer = DataStreamWriter::new(Vec::new()).unwrap();
    writer.write_all(&data).unwrap();
    let wire = writer.finish().unwrap();
    assert_eq!(
        frames_of(&wire),
        vec![
            (FRAME_RAW, DATA_CHUNK),
            (FRAME_RAW, DATA_CHUNK),
            (FRAME_RAW, DATA_CHUNK),
            (FRAME_RAW, 100)
        ]
    );
    // Five bytes of framing per block and the end frame, nothing more.
    assert_eq!(wire.len(), data.len() + 4 * 5 + 4);
    let mut back = Vec::new();
    DataStreamReader::new(&wire[..])
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, data);
}

#[test]
fn text_goes_compressed_and_mixed_streams_round_trip() {
    let mut data = text(2 * DATA_CHUNK);
    data.extend(noise(DATA_CHUNK, 3));
    data.extend(text(DATA_CHUNK / 2));
    let mut writer = DataStreamWriter::new(Vec::new()).unwrap();
    writer.write_all(&data).unwrap();
    let wire = writer.finish().unwrap();
    let kinds: Vec<u8> = frames_of(&wire).iter().map(|f| f.0).collect();
    assert_eq!(kinds, vec![FRAME_ZSTD, FRAME_ZSTD, FRAME_RAW, FRAME_ZSTD]);
    assert!(wire.len() < DATA_CHUNK + DATA_CHUNK / 2, "{}", wire.len());
    let mut back = Vec::new();
    let mut reader = DataStreamReader::new(&wire[..]);
    // Small reads cross frame boundaries of both kinds.
    let mut piece = [0u8; 4099];
    loop {
        let n = reader.read(&mut piece).unwrap();
        if n == 0 {
            break;
        }
        back.extend_from_slice(&piece[..n]);
    }
    assert!(reader.ended());
    assert_eq!(back, data);
}

#[test]
fn a_frame_inflating_past_the_block_size_is_refused() {
    let bomb = zstd::bulk::compress(&vec![0u8; DATA_CHUNK + 1], 1).unwrap();
    let mut wire = Vec::new();
    write_data_frame(&mut wire, FRAME_ZSTD, &bomb).unwrap();
    write_frame(&mut wire, &[]).unwrap();
    let err = DataStreamReader::new(&wire[..])
        .read_to_end(&mut Vec::new())
        .unwrap_err();
    assert!(
        err.to_string().starts_with(
            "the peer sent a compressed data frame that does not decompress to at most 1048576 bytes"
        ),
        "{err}"
    );
}

#[test]
fn an_unknown_frame_kind_is_refused() {
    let mut wire = Vec::new();
    write_data_frame(&mut wire, 9, b"abc").unwrap();
    let err = DataStreamReader::new(&wire[..])
        .read_to_end(&mut Vec::new())
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the peer sent a data frame of unknown kind 9"
    );
}

#[test]
fn drain_skips_compressed_and_raw_frames() {
    let mut data = text(DATA_CHUNK + 10);
    data.extend(noise(DATA_CHUNK + 10, 5));
    let mut writer = DataStreamWriter::new(Vec::new()).unwrap();
    writer.write_all(&data).unwrap();
    let mut wire = writer.finish().unwrap();
    write_message(&mut wire, &Request::Bye).unwrap();
    for consumed in [0, 10, DATA_CHUNK + 20] {
        let mut r = &wire[..];
        let mut reader = DataStreamReader::new(&mut r);
        let mut first = vec![0u8; consumed];
        reader.read_exact(&mut first).unwrap();
        assert_eq!(first, data[..consumed]);
        reader.drain().unwrap();
        assert_eq!(read_message::<Request>(&mut r).unwrap(), Request::Bye);
    }
}

#[test]
fn activation_messages_round_trip_and_hide_secret_values() {
    let request = Request::Activate(ActivateRequest {
        system: "/ferry/store/abc-system-web".into(),
        host_env: [("FERRY_HOST_NAME".to_string(), "web1".to_string())].into(),
        confirm_within_ms: Some(30_000),
        secrets: [("db".to_string(), b"hunter2".to_vec())].into(),
    });
    let mut wire = Vec::new();
    write_message(&mut wire, &request).unwrap();
    write_message(&mut wire, &Request::Confirm { generation: 4 }).unwrap();
    let report = Response::Activation {
        report_json: r#"{"outcome":"activated","generation":3}"#.into(),
    };
    write_message(&mut wire, &report).unwrap();
    let mut r = &wire[..];
    assert_eq!(read_message::<Request>(&mut r).unwrap(), request);
    assert_eq!(
        read_message::<Request>(&mut r).unwrap(),
        Request::Confirm { generation: 4 }
    );
    assert_eq!(read_message::<Response>(&mut r).unwrap(), report);
    let shown = format!("{request:?}");
    assert!(shown.contains("\"db\""), "{shown}");
    assert!(!shown.contains("hunter2"), "{shown}");
}

#[test]
fn hello_round_trips() {
    let mut wire = Vec::new();
    write_hello(&mut wire, &Hello::ours()).unwrap();
    assert_eq!(read_hello(&mut &wire[..]).unwrap(), Hello::ours());
}

#[test]
fn an_unknown_frame_kind_is_skipped_so_drain_reaches_the_next_message() {
    let mut wire = Vec::new();
    write_data_frame(&mut wire, 9, b"abc").unwrap();
    write_data_frame(&mut wire, FRAME_RAW, b"more").unwrap();
    write_frame(&mut wire, &[]).unwrap();
    write_message(&mut wire, &Request::Bye).unwrap();
    let mut r = &wire[..];
    let mut reader = DataStreamReader::new(&mut r);
    assert!(reader.read_to_end(&mut Vec::new()).is_err());
    reader.drain().unwrap();
    assert_eq!(read_message::<Request>(&mut r).unwrap(), Request::Bye);
}

#[test]
fn a_frame_over_the_limit_ends_the_stream_with_one_error() {
    let mut wire = ((MAX_FRAME + 1) as u32).to_le_bytes().to_vec();
    // What follows would parse as frames if the reader went on.
    write_data_frame(&mut wire, FRAME_RAW, b"abc").unwrap();
    write_message(&mut wire, &Request::Bye).unwrap();
    let mut r = &wire[..];
    let mut reader = DataStreamReader::new(&mut r);
    assert!(reader.read_to_end(&mut Vec::new()).is_err());
    let err = reader.drain().unwrap_err();
    assert!(
        matches!(err, CodecError::FrameTooLarge { size } if size == MAX_FRAME + 1),
        "{err}"
    );
}

#[test]
fn a_truncated_message_is_described_in_words_not_debug_text() {
    let mut payload = bincode::serde::encode_to_vec(
        Request::QueryMissing {
            paths: vec!["x".repeat(40)],
        },
        config(),
    )
    .unwrap();
    payload.truncate(payload.len() - 1);
    let mut wire = Vec::new();
    write_frame(&mut wire, &payload).unwrap();
    let err = read_message::<Request>(&mut &wire[..]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the peer sent a message this ferry cannot decode: it is 1 byte short"
    );
}
