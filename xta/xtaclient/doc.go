// Package xtaclient is a small XTA 2 Version 5 client for the office side: the
// Fachverfahren that pulls applications from amtsbote's XTA ports and answers a case.
//
// It speaks SOAP 1.2 (XTA core 3.1.1) over HTTPS with a TLS client certificate and
// the Party header of the office's account, in the style of the KoSIT SoapUI
// requests (prefixes soap and ns). Answers are read plain or as MTOM/XOP
// (multipart/related): xop:Include elements are resolved to the bytes of the MIME
// part they name. Content above Options.MTOMThreshold is sent as XOP parts.
//
// The typed calls cover every operation of the three ports a Fachverfahren uses:
//
//	core.recipient       GetStatusList, GetMessage, Close
//	core.sender          CreateMessageID, LookupService, SendMessage, SendMessageSync
//	core.transport.base  CheckAccountActive, GetTransportReport
//
// An XTA exception comes back as a *Fault (errors.As), with IsException to test
// for one by name. Post and Do give the raw answer for tests and tools that need
// the exact bytes (schema validation, replays).
//
// The package depends on the standard library only, so that it can be vendored
// into an office's own tools; it does not import package xta.
package xtaclient
