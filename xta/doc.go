// Package xta is amtsbote's XTA 2 Version 5 face (XTA core 3.1.1, SOAP 1.2).
//
// It has two halves:
//
//   - Server: the SOAP ports an office's Fachverfahren calls, at the paths of the
//     KoSIT XTA 2 test environment — /services/XTACore/Recipient (getStatusList,
//     getMessage, close: the office pulls), /services/XTACore/Sender (createMessageID,
//     lookupService, sendMessage, sendMessageSync: the office answers a case) and
//     /services/XTACore/TransportBase (checkAccountActive, getTransportReport). Every
//     read and decision goes through broker.OfficeDesk, so the office rules (an office
//     sees only its own submissions, close is the confirmation) are the broker's.
//   - Adapter: the channel.XTA delivery adapter. For an office with its own XTA
//     endpoint it pushes by deliverMessage (core.reader); for an office that pulls it
//     answers Pending and the message waits in the office's list until close.
//
// Messages are written by hand with a small XML writer (prefix xta, declared on every
// top-level XTA element) so that each emitted part validates on its own against the
// official XSDs; requests are read with encoding/xml, which resolves namespaces.
// Binary content travels base64 inline or as MTOM/XOP parts; both are accepted on
// input, and output uses XOP for parts above Options.MTOMThreshold.
package xta
