// The answers the conformance check reads, as RootFi's official SDK (rootfi-api) declares
// them; conformance.js turns this interface into a JSON Schema (ts-json-schema-generator:
// no unknown keys, every required key, enums closed) and validates each answer against it.
import { RootFi } from "rootfi-api";

export interface SdkAnswers {
    createCustomers: RootFi.ecommerce.CreateCustomersResponse;
    listCustomers: RootFi.ecommerce.GetCustomersResponse;
    sync: RootFi.core.GetSyncObject;
    syncs: RootFi.core.GetSyncsObject;
    jobs: RootFi.core.GetSyncJobsObject;
    job: RootFi.core.GetJobObject;
    companies: RootFi.core.GetCompaniesObject;
    company: RootFi.core.GetCompanyObject;
    error: RootFi.RootFiApiResponseType;
}
