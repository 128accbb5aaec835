// Private: the registry's selector and proactor factories, for tests that
// wrap an engine.
#pragma once

#include <backends/proactor.hpp>
#include <backends/selector.hpp>

#include <memory>
#include <string_view>

namespace aio::detail {

// A new selector of the named compiled-in backend; std::invalid_argument otherwise.
std::unique_ptr<Selector> make_selector(std::string_view name);
// The same for a completion backend's Proactor.
std::unique_ptr<Proactor> make_proactor(std::string_view name);

}  // namespace aio::detail
