//! A tonic codec that sends segments already encoded and reads the collector's `Commands`.

use bytes::{BufMut, Bytes};
use oap_proto::v3::Commands;
use prost::Message;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// Encoded messages out, `Commands` in.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Commands;
    type Encoder = RawEncoder;
    type Decoder = CommandsDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        CommandsDecoder
    }
}

/// Writes a message's bytes as they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

/// Reads `Commands`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CommandsDecoder;

impl Decoder for CommandsDecoder {
    type Item = Commands;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Commands>, Status> {
        Commands::decode(src).map(Some).map_err(|error| Status::internal(format!("unreadable Commands: {error}")))
    }
}
