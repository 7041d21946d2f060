import Testing
import FreshetCore

// Every expected value below is what PostgreSQL 15.18 printed for `to_jsonb(v)::text` (compacted), with the input
// being the same value's text output in a session with DateStyle ISO, TimeZone UTC, IntervalStyle iso_8601,
// extra_float_digits 3 and bytea_output hex.

/// The compact JSON text of the value PgTextValue makes of `text` as a value of type `oid`.
private func json(_ text: String, _ oid: UInt32) -> String {
    PgTextValue.json(text: text, typeOID: oid).jsonText
}

@Test func booleans() {
    #expect(PgTextValue.json(text: "t", typeOID: 16) == .bool(true))
    #expect(PgTextValue.json(text: "f", typeOID: 16) == .bool(false))
    #expect(PgTextValue.json(text: "maybe", typeOID: 16) == .string("maybe"))
}

@Test func integersPassThrough() {
    #expect(PgTextValue.json(text: "-32768", typeOID: 21) == .number("-32768"))
    #expect(PgTextValue.json(text: "42", typeOID: 23) == .number("42"))
    #expect(PgTextValue.json(text: "9223372036854775807", typeOID: 20) == .number("9223372036854775807"))
    #expect(PgTextValue.json(text: "-9223372036854775808", typeOID: 20) == .number("-9223372036854775808"))
}

@Test func oidIsAStringInToJsonb() {
    // to_jsonb only makes numbers of int2/int4/int8/float4/float8/numeric; oid comes out as a string.
    #expect(PgTextValue.json(text: "4294967295", typeOID: 26) == .string("4294967295"))
}

@Test func floatsArePrintedAsNumeric() {
    #expect(PgTextValue.json(text: "1.5", typeOID: 700) == .number("1.5"))
    #expect(PgTextValue.json(text: "1.1", typeOID: 700) == .number("1.1"))
    #expect(json("1e+30", 700) == "1000000000000000000000000000000")
    #expect(json("3.4028235e+38", 700) == "340282350000000000000000000000000000000")
    #expect(json("1e-40", 700) == "0.0000000000000000000000000000000000000001")
    #expect(json("-0", 700) == "0")
    #expect(json("0.1", 701) == "0.1")
    #expect(json("-0", 701) == "0")
    #expect(json("1e-07", 701) == "0.0000001")
    #expect(json("1.5e-05", 701) == "0.000015")
    #expect(json("1e+15", 701) == "1000000000000000")
    #expect(json("123456789012345.6", 701) == "123456789012345.6")
    #expect(json("1.2345678901234568e+17", 701) == "123456789012345680")
    #expect(json("2.5e+20", 701) == "250000000000000000000")
    #expect(json("-1.25e-300", 701) == "-0." + String(repeating: "0", count: 299) + "125")
    #expect(json("1e+300", 701) == "1" + String(repeating: "0", count: 300))
}

@Test func nonFiniteNumbersAreStrings() {
    for oid: UInt32 in [700, 701, 1700] {
        #expect(PgTextValue.json(text: "NaN", typeOID: oid) == .string("NaN"))
        #expect(PgTextValue.json(text: "Infinity", typeOID: oid) == .string("Infinity"))
        #expect(PgTextValue.json(text: "-Infinity", typeOID: oid) == .string("-Infinity"))
    }
}

@Test func numericKeepsItsScale() {
    #expect(PgTextValue.json(text: "1.50", typeOID: 1700) == .number("1.50"))
    #expect(PgTextValue.json(text: "0.0", typeOID: 1700) == .number("0.0"))
    #expect(PgTextValue.json(text: "0.000001", typeOID: 1700) == .number("0.000001"))
    #expect(json("-12345678901234567890.123", 1700) == "-12345678901234567890.123")
    #expect(json("100000000000000000000", 1700) == "100000000000000000000")
    #expect(PgTextValue.json(text: "abc", typeOID: 1700) == .string("abc"))
}

@Test func jsonbIsParsed() {
    #expect(json(#"{"a": [1, 2.50, "x"], "b": 2}"#, 3802) == #"{"a":[1,2.50,"x"],"b":2}"#)
    #expect(PgTextValue.json(text: #""s""#, typeOID: 3802) == .string("s"))
    #expect(PgTextValue.json(text: "null", typeOID: 3802) == .null)
    #expect(PgTextValue.json(text: "100000", typeOID: 3802) == .number("100000"))
    #expect(json(#"{"a": "x\"y\\z\u0001", "k": {"ab": [true, false, null, -0.0015]}}"#, 3802)
            == #"{"a":"x\"y\\z\u0001","k":{"ab":[true,false,null,-0.0015]}}"#)
    #expect(PgTextValue.json(text: "{not json", typeOID: 3802) == .string("{not json"))
}

@Test func jsonTakesJsonbForm() {
    // Keys sorted shorter-first then bytewise, a repeated key keeps its last value, numbers as numeric prints them.
    #expect(json(#"{"b":1, "a":[1,2.50,"x"], "b":2}"#, 114) == #"{"a":[1,2.50,"x"],"b":2}"#)
    #expect(json(#"{"bb":1,"a":2,"ccc":{"z":1,"y":[{"b":1,"a":2}]},"b":3,"a":4,"é":5,"Z":6}"#, 114)
            == #"{"Z":6,"a":4,"b":3,"bb":1,"é":5,"ccc":{"y":[{"a":2,"b":1}],"z":1}}"#)
    #expect(json("[-0, -0.0, 1E2, 1.5e-3, 0.10, 1e+2, -1.0e1, 12345678901234567890123, 0e5, 0.0e-3, -0e0, 1.23E+1, 100e-2]", 114)
            == "[0,0.0,100,0.0015,0.10,100,-10,12345678901234567890123,0,0.0000,0,12.3,1.00]")
    #expect(json(#"{"a":"\u00e9\n\/x\ud83d\ude00"}"#, 114) == "{\"a\":\"é\\n/x😀\"}")
    #expect(PgTextValue.json(text: #"  "str"  "#, typeOID: 114) == .string("str"))
    #expect(PgTextValue.json(text: "[1,", typeOID: 114) == .string("[1,"))
}

@Test func jsonbFormOrdersARowLikeToJsonb() {
    let row: JSONValue = .object(["name": .string("x"), "id": .number("1"), "b": .number("1e2")])
    #expect(PgTextValue.jsonbForm(row).jsonText == #"{"b":100,"id":1,"name":"x"}"#)
}

@Test func timestampsUseTheXsdForm() {
    #expect(PgTextValue.json(text: "2026-12-01 12:34:56.789", typeOID: 1114) == .string("2026-12-01T12:34:56.789"))
    #expect(json("2026-12-01 12:34:56", 1114) == #""2026-12-01T12:34:56""#)
    #expect(json("2026-12-01 12:34:56.1", 1114) == #""2026-12-01T12:34:56.1""#)
    #expect(json("2026-12-01 12:34:56.123456", 1114) == #""2026-12-01T12:34:56.123456""#)
    #expect(json("0044-03-15 12:00:00.5 BC", 1114) == #""0044-03-15T12:00:00.5 BC""#)
    #expect(json("4713-01-01 00:00:00 BC", 1114) == #""4713-01-01T00:00:00 BC""#)
    #expect(json("12026-01-01 00:00:00", 1114) == #""12026-01-01T00:00:00""#)
    #expect(json("294276-12-31 23:59:59.999999", 1114) == #""294276-12-31T23:59:59.999999""#)
    #expect(json("infinity", 1114) == #""infinity""#)
    #expect(json("-infinity", 1114) == #""-infinity""#)
    // Not ISO DateStyle output: the text as it is.
    #expect(json("12/01/2026 12:34:56", 1114) == #""12/01/2026 12:34:56""#)
}

@Test func timestamptzHasAnHHMMOffset() {
    #expect(PgTextValue.json(text: "2026-12-01 12:34:56.789+00", typeOID: 1184)
            == .string("2026-12-01T12:34:56.789+00:00"))
    #expect(json("2026-12-01 12:34:56+00", 1184) == #""2026-12-01T12:34:56+00:00""#)
    #expect(json("2026-12-01 12:34:56.000001+00", 1184) == #""2026-12-01T12:34:56.000001+00:00""#)
    #expect(json("0044-03-15 12:00:00+00 BC", 1184) == #""0044-03-15T12:00:00+00:00 BC""#)
    #expect(json("12026-01-01 00:00:00+00", 1184) == #""12026-01-01T00:00:00+00:00""#)
    #expect(json("infinity", 1184) == #""infinity""#)
    #expect(json("-infinity", 1184) == #""-infinity""#)
    // Other session time zones (PostgreSQL printed these with TimeZone Asia/Kolkata, America/New_York).
    #expect(json("2026-12-01 18:04:56+05:30", 1184) == #""2026-12-01T18:04:56+05:30""#)
    #expect(json("2026-12-01 07:34:56-05", 1184) == #""2026-12-01T07:34:56-05:00""#)
    #expect(json("1850-01-01 07:03:58-04:56:02", 1184) == #""1850-01-01T07:03:58-04:56:02""#)
    #expect(json("2026-12-01 12:34:56", 1184) == #""2026-12-01 12:34:56""#)  // no offset: not tz output
}

@Test func datesAndTimesAsPrinted() {
    #expect(PgTextValue.json(text: "2026-12-01", typeOID: 1082) == .string("2026-12-01"))
    #expect(json("0044-03-15 BC", 1082) == #""0044-03-15 BC""#)
    #expect(json("infinity", 1082) == #""infinity""#)
    #expect(json("-infinity", 1082) == #""-infinity""#)
    #expect(json("12026-01-01", 1082) == #""12026-01-01""#)
    #expect(json("12:34:56.789", 1083) == #""12:34:56.789""#)
    #expect(json("24:00:00", 1083) == #""24:00:00""#)
    #expect(json("12:34:56.789+02", 1266) == #""12:34:56.789+02""#)
    #expect(json("12:34:56-05:30", 1266) == #""12:34:56-05:30""#)
    #expect(json("12:34:56+05:30:15", 1266) == #""12:34:56+05:30:15""#)
}

@Test func otherTypesAreTheirText() {
    #expect(json("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", 2950) == #""a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11""#)
    #expect(json("a\"b\\c\nd\te", 25) == #""a\"b\\c\nd\te""#)
    #expect(json("", 25) == #""""#)
    #expect(json("x", 1043) == #""x""#)
    #expect(json("ab  ", 1042) == #""ab  ""#)
    #expect(json("pg_class", 19) == #""pg_class""#)
    #expect(json("192.168.0.1/24", 869) == #""192.168.0.1/24""#)
    #expect(json("10.0.0.0/8", 650) == #""10.0.0.0/8""#)
    #expect(json("08:00:2b:01:02:03", 829) == #""08:00:2b:01:02:03""#)
    #expect(json("\\x0102ff", 17) == #""\\x0102ff""#)
    #expect(json("$12.34", 790) == #""$12.34""#)
    #expect(json("101", 1560) == #""101""#)
    #expect(json("(1,2)", 600) == #""(1,2)""#)
    #expect(json("[1,5)", 3904) == #""[1,5)""#)
    #expect(json("{[1,3),[5,7)}", 4451) == #""{[1,3),[5,7)}""#)
    #expect(json("<foo/>", 142) == #""<foo/>""#)
    #expect(json("'a' 'b'", 3614) == #""'a' 'b'""#)
    #expect(json("1/0", 3220) == #""1/0""#)
    #expect(json("P1DT2H", 1186) == #""P1DT2H""#)
    // A composite, and a user-defined type: their text (to_jsonb would make an object of the composite).
    #expect(json(#"(1,"a b")"#, 16_500) == #""(1,\"a b\")""#)
}

@Test func vectors() {
    #expect(json("1 2", 22) == "[1,2]")
    #expect(json("", 22) == "[]")
    #expect(json("1 2", 30) == #"["1","2"]"#)
}

@Test func integerArrays() {
    #expect(PgTextValue.json(text: "{1,2,NULL}", typeOID: 1007) == .array([.number("1"), .number("2"), .null]))
    #expect(json("{{1,2},{3,4}}", 1007) == "[[1,2],[3,4]]")
    #expect(json("{{{1},{2}}}", 1007) == "[[[1],[2]]]")
    #expect(json("{}", 1007) == "[]")
    #expect(json("[0:1]={5,6}", 1007) == "[5,6]")
    #expect(json("[1:2][3:3]={{1},{2}}", 1007) == "[[1],[2]]")
    #expect(json("{-1,9223372036854775807}", 1016) == "[-1,9223372036854775807]")
    #expect(json("{1,-2}", 1005) == "[1,-2]")
    #expect(json("{1,2}", 1028) == #"["1","2"]"#)
}

@Test func textArrays() {
    #expect(json(#"{"a b","c\"d",NULL,"NULL","null","nULL","","x\\y","{}",","," sp ",é,"tab\#there"}"#, 1009)
            == #"["a b","c\"d",null,"NULL","null","nULL","","x\\y","{}",","," sp ","é","tab\there"]"#)
    #expect(json("{{a,b},{c,NULL}}", 1009) == #"[["a","b"],["c",null]]"#)
    #expect(json(#"{x,"y z"}"#, 1015) == #"["x","y z"]"#)
    #expect(json(#"{"x  "}"#, 1014) == #"["x  "]"#)
    #expect(json("{n}", 1003) == #"["n"]"#)
    #expect(json(#"{"\\x01"}"#, 1001) == #"["\\x01"]"#)
    #expect(json("{10.0.0.1}", 1041) == #"["10.0.0.1"]"#)
    #expect(json(#"{"[1,5)",empty}"#, 3905) == #"["[1,5)","empty"]"#)
    #expect(json("{(3,4),(1,2);(1,1),(0,0)}", 1020) == #"["(3,4),(1,2)","(1,1),(0,0)"]"#)
}

@Test func scalarArrays() {
    #expect(json("{t,f,NULL}", 1000) == "[true,false,null]")
    #expect(json("{1.5,NaN,Infinity,-Infinity,-0,1e-07}", 1022) == #"[1.5,"NaN","Infinity","-Infinity",0,0.0000001]"#)
    #expect(json("{1.5,NaN,1e+30}", 1021) == #"[1.5,"NaN",1000000000000000000000000000000]"#)
    #expect(json("{1.50,NaN,Infinity,0.0}", 1231) == #"[1.50,"NaN","Infinity",0.0]"#)
    #expect(json("{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,NULL}", 2951) == #"["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",null]"#)
}

@Test func jsonArrays() {
    #expect(json(#"{"{\"a\": 1, \"b\": [1, \"x y\"]}","\"s\"","null",NULL,1,"{\"q\": \"\\\"{,}\\\\\"}"}"#, 3807)
            == #"[{"a":1,"b":[1,"x y"]},"s",null,null,1,{"q":"\"{,}\\"}]"#)
    #expect(json(#"{{"{\"a\": 1}"}}"#, 3807) == #"[[{"a":1}]]"#)
    #expect(json(#"{"{\"b\":1,\"a\":1e2}","[1, 2]"}"#, 199) == #"[{"a":100,"b":1},[1,2]]"#)
}

@Test func dateTimeArrays() {
    #expect(json(#"{"2026-12-01 12:34:56.789+00",infinity,NULL,"0044-03-15 12:00:00+00 BC"}"#, 1185)
            == #"["2026-12-01T12:34:56.789+00:00","infinity",null,"0044-03-15T12:00:00+00:00 BC"]"#)
    #expect(json(#"{"2026-12-01 12:34:56.789","0044-03-15 12:00:00 BC",-infinity}"#, 1115)
            == #"["2026-12-01T12:34:56.789","0044-03-15T12:00:00 BC","-infinity"]"#)
    #expect(json(#"{2026-12-01,infinity,"0044-03-15 BC"}"#, 1182) == #"["2026-12-01","infinity","0044-03-15 BC"]"#)
    #expect(json("{12:00:00}", 1183) == #"["12:00:00"]"#)
    #expect(json("{12:00:00+02}", 1270) == #"["12:00:00+02"]"#)
    #expect(json(#"{"1 2",3}"#, 1006) == "[[1,2],[3]]")
}

@Test func malformedArraysFallBackToTheirText() {
    for text in ["{1,2", "1,2", "{1,,2}", "{1,2}x", #"{"a}"#, "{{1},2", "{a{b}}", "[0:1]{1,2}", "{{{{{{{1}}}}}}}"] {
        #expect(PgTextValue.json(text: text, typeOID: 1007) == .string(text))
    }
}
