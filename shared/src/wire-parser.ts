/**
 * The Socket.IO packet parser both sides use: socket.io-parser's own encoder
 * and decoder, with the decoder's attachment limit raised from its default
 * of 10 binary parts per packet. Secure-aggregation messages carry several
 * binary fields per neighbour (keys, signatures, shares), so a SecAgg+
 * request with k = 36 neighbours has over 100; the default limit made the
 * receiver drop the connection ("parse error: too many attachments").
 * The byte size of a packet stays capped by `maxHttpBufferSize`.
 *
 * Pure: no I/O (a parser only transforms packets).
 */
import * as parser from 'socket.io-parser';

/** Most binary attachments one packet may carry: two per neighbour for the largest neighbour list accepted on the wire, and then some. */
export const MAX_PACKET_ATTACHMENTS = 4 * 100_000;

class Decoder extends parser.Decoder {
  constructor() {
    super({ maxAttachments: MAX_PACKET_ATTACHMENTS });
  }
}

/** Pass as `parser` to the Socket.IO server and client. */
export const wireParser = { protocol: parser.protocol, PacketType: parser.PacketType, Encoder: parser.Encoder, Decoder };
