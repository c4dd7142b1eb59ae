//! SIP codec throughput: framing, parsing and serializing the messages a chat session is
//! made of. Run: `cargo bench --bench sip_codec`; messages/s = elements/s in the report.

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use perch::lync::sip::Message;
use perch::lync::sip::framer::{self, Frame, FrameLimits};

const INFO: &str = "INFO sip:ocschat@127.0.0.1:5061;transport=tls SIP/2.0\r\n\
Via: SIP/2.0/tls 10.0.0.5:53412\r\n\
From: <sip:alice@example.test>;tag=48213390;epid=8f3e2a1b0c\r\n\
To: <sip:ocschat@example.test>;tag=9c1f52e0\r\n\
Max-Forwards: 70\r\n\
CSeq: 7 INFO\r\n\
User-Agent: Purple/2.14.12 Sipe/1.25.0 (linux-x86_64)\r\n\
Call-ID: 12ABg34CDa56EFi78GHm90IJt12KLb34MNx56OPx\r\n\
Content-Type: text/plain\r\n\
Content-Length: 199\r\n\r\n\
<xccos ver=\"1\" envid=\"1804289390\" xmlns=\"urn:parlano:xml:ns:xccos\"><grpchat id=\"grpchat\" seqid=\"1\" chanUri=\"ma-chan://example.test/1\" author=\"sip:alice@example.test\"><chat>hi</chat></grpchat></xccos>";

fn frame_one(buf: &mut BytesMut) -> (bytes::Bytes, bytes::Bytes) {
    match framer::decode(buf, &FrameLimits::default()) {
        Ok(Some(Frame::Message { head, body })) => (head, body),
        other => panic!("bench input did not frame: {other:?}"),
    }
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("sip");
    group.throughput(Throughput::Elements(1));
    group.bench_function("frame+parse", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(INFO.as_bytes());
            let (head, body) = frame_one(&mut buf);
            Message::parse(&head, body).unwrap()
        })
    });
    let mut buf = BytesMut::from(INFO.as_bytes());
    let (head, body) = frame_one(&mut buf);
    let message = Message::parse(&head, body).unwrap();
    group.bench_function("serialize", |b| b.iter(|| message.encode()));
    group.bench_function("frame+parse+serialize", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(INFO.as_bytes());
            let (head, body) = frame_one(&mut buf);
            Message::parse(&head, body).unwrap().encode()
        })
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
