// Drives a running sandbox with RootFi's official SDK (npm rootfi-api) and checks every answer
// against the types the SDK declares. Prints one JSON object: {"checks": [{name, ok, problems}]}.
//
// rootfi-api 3.1.8 ships its types (.d.ts) but no runtime schemas (no `unrecognizedObjectKeys`
// or `allowUnrecognizedEnumValues` to turn on: its client returns the body unparsed), so the
// declared types are made into a JSON Schema (answers.ts, ts-json-schema-generator) that
// refuses unknown keys, requires every required key and closes every enum; Ajv applies it.
// A `null` is read as an absent optional field, as Fern's generated SDKs read it.
//
// Environment: SANDBOX_URL (its root), API_KEY, COMPANY_IDS (two or more, comma-separated).
"use strict";

const fs = require("fs");
const path = require("path");
const Ajv = require("ajv");
const { RootFiClient, RootFiError } = require("rootfi-api");

const HERE = __dirname;
const SCHEMA_CACHE = path.join(HERE, "node_modules", ".cache", "sdk-answers.schema.json");

function sdkSchema() {
    const source = path.join(HERE, "answers.ts");
    if (fs.existsSync(SCHEMA_CACHE) && fs.statSync(SCHEMA_CACHE).mtimeMs > fs.statSync(source).mtimeMs) {
        return JSON.parse(fs.readFileSync(SCHEMA_CACHE, "utf8"));
    }
    const { createGenerator } = require("ts-json-schema-generator");
    const generator = createGenerator({
        path: source,
        tsconfig: path.join(HERE, "tsconfig.json"),
        type: "SdkAnswers",
        skipTypeCheck: true,
        expose: "export",
        additionalProperties: false,
    });
    const schema = generator.createSchema("SdkAnswers");
    fs.mkdirSync(path.dirname(SCHEMA_CACHE), { recursive: true });
    fs.writeFileSync(SCHEMA_CACHE, JSON.stringify(schema));
    return schema;
}

function withoutNulls(value) {
    if (Array.isArray(value)) return value.map(withoutNulls);
    if (value === null || typeof value !== "object") return value;
    const kept = {};
    for (const [key, item] of Object.entries(value)) {
        if (item !== null) kept[key] = withoutNulls(item);
    }
    return kept;
}

const ajv = new Ajv({ allErrors: true, strict: false });
ajv.addSchema(sdkSchema(), "sdk");

function problemsOf(type, answer) {
    const validate = ajv.getSchema(`sdk#/definitions/${type}`);
    if (!validate) return [`no declared type ${type}`];
    if (validate(withoutNulls(answer))) return [];
    return validate.errors.map((e) => `${type}${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`);
}

const env = process.env;
const [COMPANY, OTHER] = env.COMPANY_IDS.split(",").map(Number);
const sdk = new RootFiClient({ apiKey: env.API_KEY, environment: `${env.SANDBOX_URL}/v3` });
const stranger = new RootFiClient({ apiKey: "not-a-key", environment: `${env.SANDBOX_URL}/v3` });
const customers = sdk.ecommerce.customers;
const syncs = sdk.core.syncs;
const companies = sdk.core.companies;
const checks = [];

async function check(name, type, call, more = () => []) {
    try {
        const answer = await call();
        checks.push({ name, problems: [...problemsOf(type, answer), ...more(answer)] });
        return answer;
    } catch (error) {
        checks.push({ name, problems: [`threw ${error}: ${JSON.stringify(error.body)}`] });
        return undefined;
    }
}

async function checkError(name, status, errorClass, call) {
    try {
        await call();
        checks.push({ name, problems: [`no error (expected ${status})`] });
    } catch (error) {
        const problems = problemsOf("RootFiApiResponseType", error.body);
        if (error.statusCode !== status) problems.push(`status ${error.statusCode}, not ${status}`);
        if (!(error instanceof errorClass)) problems.push(`${error.constructor.name}, not ${errorClass.name}`);
        checks.push({ name, problems });
    }
}

async function setFaults(faults) {
    const answer = await fetch(`${env.SANDBOX_URL}/_sandbox/faults`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(faults),
    });
    if (!answer.ok) throw new Error(`PUT /_sandbox/faults: ${answer.status}`);
}

async function finished(syncId) {
    for (let tries = 0; tries < 200; tries++) {
        const sync = (await syncs.get(syncId)).data;
        if (sync.status === "SUCCESS" || sync.status === "FAILED") return sync;
        await new Promise((resolve) => setTimeout(resolve, 25));
    }
    throw new Error(`sync ${syncId} did not finish`);
}

const expect = (condition, problem) => (condition ? [] : [problem]);
const customer = (n, fields = {}) => ({ name: `SDK customer ${n}`, email: `sdk${n}@example.com`, ...fields });

// The docs' example request: its email and currency_id are the values the docs show.
const DOCS_EXAMPLE = {
    name: "John Doe", email: "", phone: "1234567890", currency_id: "1234567890", status: "ACTIVE",
    created_at: "2024-01-22T05:07:31.465Z", updated_at: "2024-01-22T05:07:31.465Z",
    address: { street: "1 Main St", city: "Springfield", pincode: "62701", country: "US" },
};

async function main() {
    const since = new Date(Date.now() - 1000).toISOString();
    await check("customers.create (one, synchronous)", "CreateCustomersResponse",
        () => customers.create({ company_id: COMPANY, data: [customer(1, { phone: "+1 555 0107", currency_id: "USD", status: "ACTIVE" })] }),
        (a) => expect(a.data.length === 1 && typeof a.sync_id === "string", "no record or sync_id"));
    await check("customers.create (the docs' example)", "CreateCustomersResponse",
        () => customers.create({ company_id: COMPANY, data: [DOCS_EXAMPLE] }));
    const written = await check("customers.create (async, run_async)", "CreateCustomersResponse",
        () => customers.create({ company_id: COMPANY, run_async: true,
            data: [customer(2), customer(3, { email: "x@refused.example" }), customer(4)] }),
        (a) => expect(typeof a.sync_id === "string", "no top-level sync_id (the docs')"));
    const syncId = written && written.sync_id;
    await check("syncs.get (just written)", "GetSyncObject", () => syncs.get(syncId));
    if (syncId) await finished(syncId);
    await check("syncs.get (ended FAILED)", "GetSyncObject", () => syncs.get(syncId),
        (a) => expect(a.data.status === "FAILED" && a.data.failed_count === 1, "not FAILED with one failure"));
    const jobs = await check("syncs.getJobs", "GetSyncJobsObject", () => syncs.getJobs(syncId),
        (a) => expect(a.data.length === 3 && a.data.some((j) => j.status === "FAILED" && j.error), "no failed job with its error"));
    const jobId = jobs && jobs.data[1].rootfi_id;
    await check("syncs.getJob", "GetJobObject", () => syncs.getJob(String(jobId)),
        (a) => expect(a.data.rootfi_id === jobId, "another job"));
    await customers.create({ company_id: OTHER, data: [customer(5)] });
    await check("syncs.list (by company)", "GetSyncsObject", () => syncs.list({ rootfiCompanyId: OTHER }),
        (a) => expect(a.data.length === 1 && a.data[0].rootfi_company_id === OTHER, "not the other company's one sync"));
    await check("syncs.list (paged)", "GetSyncsObject", () => syncs.list({ limit: 2 }),
        (a) => expect(a.data.length === 2 && typeof a.next === "string", "no second page"));

    const first = await check("customers.list (limit 2)", "GetCustomersResponse",
        () => customers.list({ limit: 2, rootfiCompanyIdEq: COMPANY }),
        (a) => expect(a.data.length === 2 && typeof a.next === "string", "no next page"));
    const seen = first ? [...first.data] : [];
    let next = first && first.next;
    for (let page = 0; next && page < 20; page++) {
        const answer = await check(`customers.list (next, page ${page + 2})`, "GetCustomersResponse",
            () => customers.list({ limit: 2, next }));
        if (!answer) break;
        seen.push(...answer.data);
        next = answer.next;
    }
    checks.push({ name: "customers.list (every page, to the end)", problems:
        expect(seen.length === 4 && new Set(seen.map((c) => c.rootfi_id)).size === 4, `${seen.length} customers, not 4`) });
    await check("customers.list (filters, sort, count)", "GetCustomersResponse",
        () => customers.list({ rootfiCompanyIdEq: COMPANY, rootfiUpdatedAtGte: since, sortRootfiUpdatedAt: "DESC",
            returnCount: "true", includeDeletedRecords: "false" }),
        (a) => expect(a.total_count === 4 && a.data[0].rootfi_id > a.data[3].rootfi_id, "not 4, newest first"));
    await check("customers.list (sort by rootfi_created_at)", "GetCustomersResponse",
        () => customers.list({ rootfiCompanyIdEq: OTHER, sortRootfiCreatedAt: "ASC" }),
        (a) => expect(a.data.length === 1 && a.data[0].rootfi_company_id === OTHER, "not the other company's one customer"));

    await check("companies.list", "GetCompaniesObject", () => companies.list(),
        (a) => expect(a.data.map((c) => c.rootfi_id).join() === [COMPANY, OTHER].join(), "not the configured companies"));
    await check("companies.list (paged)", "GetCompaniesObject", async () => {
        const page = await companies.list({ limit: 1 });
        return companies.list({ limit: 1, next: page.next });
    }, (a) => expect(a.data.length === 1 && a.data[0].rootfi_id === OTHER && !a.next, "not the last page"));
    await check("companies.get", "GetCompanyObject", () => companies.get(OTHER),
        (a) => expect(a.data.rootfi_id === OTHER, "another company"));

    const { RootFiApi401Error, RootFiApi404Error, RootFiApi500Error } = require("rootfi-api").RootFi;
    await checkError("error 401 (unknown api_key)", 401, RootFiApi401Error, () => stranger.core.companies.list());
    await checkError("error 404 (unknown sync)", 404, RootFiApi404Error, () => syncs.get("no-such-sync"));
    await checkError("error 404 (unknown company)", 404, RootFiApi404Error, () => companies.get(7));
    await checkError("error 400 (batch without run_async)", 400, RootFiError,
        () => customers.create({ company_id: COMPANY, data: [customer(6), customer(7)] }));
    await checkError("error 400 (platform refusal)", 400, RootFiError,
        () => customers.create({ company_id: COMPANY, data: [customer(8, { email: "y@refused.example" })] }));
    await setFaults({ error_500_rate: 1.0 });
    await checkError("error 500", 500, RootFiApi500Error, () => customers.create({ company_id: COMPANY, data: [customer(9)] }));
    await setFaults({ error_500_rate: 0.0, get_error_429_rate: 1.0 });
    await checkError("error 429", 429, RootFiError, () => companies.list());
    await setFaults({ get_error_429_rate: 0.0 });
}

main()
    .catch((error) => checks.push({ name: "the run", problems: [String(error && error.stack)] }))
    .finally(() => {
        const results = checks.map(({ name, problems }) => ({ name, ok: problems.length === 0, problems }));
        process.stdout.write(JSON.stringify({ checks: results }) + "\n");
    });
